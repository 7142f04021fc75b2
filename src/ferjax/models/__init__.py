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
models (``HANDCRAFTED_MODELS``, no CNN) take their LBP settings from it. A
new model is its module and one ``ModelSpec`` line in ``MODELS``; configs
are checked against these names (``config_checks``).
"""

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

import flax.linen as nn

from ferjax.models import fusion as fusion_lib


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Where a registered model's class lives and the kwargs that make it this
  model. Imports are lazy, so that the registry lists names without building
  every family."""

  module: str
  cls: str
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # A descriptor and a classifier, no CNN: nothing to fuse features into;
  # it takes its LBP settings from ``model.fusion.lbp``.
  handcrafted: bool = False
  # Fed FaceMesh landmarks (data.landmarks), not images; trained by
  # train.geometry.
  geometric: bool = False


MODELS: dict[str, ModelSpec] = {
    "lenet5": ModelSpec("ferjax.models.lenet", "LeNet5"),
    "alexnet": ModelSpec("ferjax.models.alexnet", "AlexNet"),
    "alexnet_bn": ModelSpec("ferjax.models.alexnet", "AlexNet",
                            {"batch_norm": True}),
    "googlenet": ModelSpec("ferjax.models.googlenet", "GoogLeNet"),
    "googlenet_bn": ModelSpec("ferjax.models.googlenet", "GoogLeNet",
                              {"batch_norm": True}),
    "lbp_linear": ModelSpec("ferjax.models.lbp_linear", "LBPLinear",
                            handcrafted=True),
    "geometry_svm": ModelSpec("ferjax.models.geometry", "GeometrySVM",
                              geometric=True),
    # torchvision's own networks, for its ImageNet weights (not the review's).
    "alexnet_tv": ModelSpec("ferjax.models.alexnet", "TorchvisionAlexNet"),
    "googlenet_tv": ModelSpec("ferjax.models.googlenet",
                              "TorchvisionGoogLeNet"),
    # Not the review's: the compact network bundled as the default model.
    "resnet_fer": ModelSpec("ferjax.models.resnet", "ResNet"),
    "resnet_fer_mid": ModelSpec("ferjax.models.resnet", "ResNet",
                                {"widths": (24, 48, 96, 192)}),
    "resnet_fer_small": ModelSpec("ferjax.models.resnet", "ResNet",
                                  {"widths": (16, 32, 64, 128)}),
}
for _depth in (11, 13, 16, 19):
  MODELS[f"vgg{_depth}"] = ModelSpec(
      "ferjax.models.vgg", "VGG", {"depth": _depth, "batch_norm": False})
  MODELS[f"vgg{_depth}_bn"] = ModelSpec(
      "ferjax.models.vgg", "VGG", {"depth": _depth, "batch_norm": True})

GEOMETRIC_MODELS: tuple[str, ...] = tuple(
    name for name, spec in MODELS.items() if spec.geometric)
# The models of images (what the train loop, export and saliency take).
MODEL_NAMES: tuple[str, ...] = tuple(
    name for name in MODELS if name not in GEOMETRIC_MODELS)
HANDCRAFTED_MODELS: tuple[str, ...] = tuple(
    name for name, spec in MODELS.items() if spec.handcrafted)


def create_model(name: str, *, num_classes: int,
                 fusion: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> nn.Module:
  """Builds the registered model ``name``; ``kwargs`` override its defaults.

  ``fusion`` is ``config.model.fusion`` (``None``: no fusion).
  """
  if name not in MODELS:
    raise ValueError(
        f"config.model.name: unknown model {name!r}; "
        f"expected one of {', '.join(MODELS)}")
  entry = MODELS[name]
  model_cls = getattr(importlib.import_module(entry.module), entry.cls)
  defaults = dict(entry.kwargs)
  spec = fusion_lib.FusionSpec.from_config(fusion)
  if entry.handcrafted:
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
