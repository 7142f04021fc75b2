"""Model registry: every architecture by the name a config uses.

The contract every model follows, so one train step serves them all:
  * ``Model(num_classes=..., dtype=..., bn_axis_name=...)`` plus family kwargs;
  * ``model.apply(variables, x, train=bool, rngs={'dropout': key},
    mutable=[...])`` with ``x`` float NHWC already resized and normalised;
  * it returns float32 logits of shape ``(batch, num_classes)``;
  * BatchNorm running statistics live in the ``batch_stats`` collection and
    are synchronised over ``bn_axis_name`` when it is set;
  * auxiliary training heads (GoogLeNet) ``sow`` their logits into the
    ``aux_logits`` collection and only exist when ``train=True``.

``create_model(..., fusion=config.model.fusion)`` wraps any CNN in
``fusion.Fused`` when fusion features are asked for; the hand-crafted
models (``HANDCRAFTED_MODELS``, no CNN) take their LBP settings from it.
"""

import importlib
from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from ferjax.models import fusion as fusion_lib

# name -> (module, class, constructor kwargs). Imports are lazy so that the
# registry lists names without building every family.
_REGISTRY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "lenet5": ("ferjax.models.lenet", "LeNet5", {}),
    "alexnet": ("ferjax.models.alexnet", "AlexNet", {}),
    "alexnet_bn": ("ferjax.models.alexnet", "AlexNet", {"batch_norm": True}),
    "googlenet": ("ferjax.models.googlenet", "GoogLeNet", {}),
    "googlenet_bn": ("ferjax.models.googlenet", "GoogLeNet",
                     {"batch_norm": True}),
    "lbp_linear": ("ferjax.models.lbp_linear", "LBPLinear", {}),
    "geometry_svm": ("ferjax.models.geometry", "GeometrySVM", {}),
    # torchvision's own networks, for its ImageNet weights (not the review's).
    "alexnet_tv": ("ferjax.models.alexnet", "TorchvisionAlexNet", {}),
    "googlenet_tv": ("ferjax.models.googlenet", "TorchvisionGoogLeNet", {}),
}
for _depth in (11, 13, 16, 19):
  _REGISTRY[f"vgg{_depth}"] = (
      "ferjax.models.vgg", "VGG", {"depth": _depth, "batch_norm": False})
  _REGISTRY[f"vgg{_depth}_bn"] = (
      "ferjax.models.vgg", "VGG", {"depth": _depth, "batch_norm": True})

# Fed FaceMesh landmarks (data.landmarks), not images; trained by train.geometry.
GEOMETRIC_MODELS: tuple[str, ...] = ("geometry_svm",)
# The models of images (what the train loop, export and saliency take).
MODEL_NAMES: tuple[str, ...] = tuple(
    n for n in _REGISTRY if n not in GEOMETRIC_MODELS)
# A descriptor and a classifier, no CNN: nothing to fuse features into.
HANDCRAFTED_MODELS: tuple[str, ...] = ("lbp_linear",)


def create_model(name: str, *, num_classes: int,
                 fusion: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> nn.Module:
  """Builds the registered model ``name``; ``kwargs`` override its defaults.

  ``fusion`` is ``config.model.fusion`` (``None``: no fusion).
  """
  if name not in _REGISTRY:
    raise ValueError(
        f"config.model.name: unknown model {name!r}; "
        f"expected one of {', '.join(_REGISTRY)}")
  module, cls, defaults = _REGISTRY[name]
  model_cls = getattr(importlib.import_module(module), cls)
  spec = fusion_lib.FusionSpec.from_config(fusion)
  if name in HANDCRAFTED_MODELS:
    if spec.features:
      raise ValueError(
          f"config.model.fusion.features: model {name!r} has no CNN to fuse "
          f"features into; expected () with it, got {spec.features!r}")
    defaults = {**defaults, "lbp": spec.lbp}
  model = model_cls(num_classes=num_classes, **{**defaults, **kwargs})
  if not spec.features:
    return model
  return fusion_lib.Fused(backbone=model, spec=spec, num_classes=num_classes,
                          dtype=model.dtype, bn_axis_name=model.bn_axis_name)
