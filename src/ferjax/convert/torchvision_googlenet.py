"""torchvision's GoogLeNet state dict as ``googlenet_tv`` variables.

Module names carry over with a Sequential's ``.0`` as ``_0``
(``inception3a.branch2.1.conv.weight`` -> ``inception3a/branch2_1/conv``);
BatchNorm's weight and bias are ``scale`` and ``bias`` and its running
statistics ``batch_stats``. The auxiliary heads' ``fc1`` reads a 128 x 4 x 4
map (torch flattens C,H,W, ferjax H,W,C). A state dict saved without the
auxiliary heads (``aux_logits=False``) gives a model without them.
"""

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ferjax.models import create_model
from ferjax.convert import torch_state

NAME = "googlenet_tv"
# torchvision's ``transform_input`` for its ImageNet weights, as a
# normalisation: (x - 0.5) / 0.5 on RGB in [0, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
_BN_LEAVES = (("params", "scale", "weight"), ("params", "bias", "bias"),
              ("batch_stats", "mean", "running_mean"),
              ("batch_stats", "var", "running_var"))


def is_googlenet(state: Mapping[str, np.ndarray]) -> bool:
  return "inception3a.branch1.conv.weight" in state


def _module(torch_module: str) -> str:
  """'inception3a.branch2.1.conv' -> 'inception3a/branch2_1/conv'."""
  parts: list[str] = []
  for part in torch_module.split("."):
    if part.isdigit() and parts:
      parts[-1] = f"{parts[-1]}_{part}"
    else:
      parts.append(part)
  return "/".join(parts)


def to_variables(state: Mapping[str, np.ndarray], path: str | os.PathLike
                 ) -> tuple[str, dict[str, Any], int, dict[str, Any]]:
  """(model name, variables, num_classes, model kwargs) of the state dict."""
  if "fc.weight" not in state or np.ndim(state["fc.weight"]) != 2:
    raise ValueError(f"{path}: key 'fc.weight' missing or not a matrix; a "
                     "torchvision GoogLeNet state dict has it (truncated?)")
  num_classes = state["fc.weight"].shape[0]
  kwargs = {} if "aux1.fc2.weight" in state else {"aux_logits": False}
  model = create_model(NAME, num_classes=num_classes, **kwargs)
  sources: torch_state.Sources = {}
  for key in state:
    torch_module, _, leaf = key.rpartition(".")
    module = _module(torch_module)
    if module.endswith("/bn"):
      for collection, ours, theirs in _BN_LEAVES:
        if leaf == theirs:
          sources[collection, module, ours] = (key, np.asarray)
    elif leaf == "weight" and np.ndim(state[key]) == 4:
      sources["params", module, "kernel"] = (key, torch_state.conv_kernel)
    elif leaf == "weight":
      sources["params", module, "kernel"] = (
          key, torch_state.flatten_dense_kernel(128, 4)
          if module.endswith("/fc1") else torch_state.dense_kernel)
    elif leaf == "bias":
      sources["params", module, "bias"] = (key, np.asarray)

  class Missing(dict):
    """Names the torch key a ferjax variable would come from."""

    def __missing__(self, item):
      collection, module, leaf = item
      torch_leaf = {"scale": "weight", "mean": "running_mean",
                    "var": "running_var", "kernel": "weight"}.get(leaf, leaf)
      return (f"{module.replace('/', '.').replace('_', '.')}.{torch_leaf}",
              np.asarray)

  variables = torch_state.assemble(
      state, Missing(sources), torch_state.shapes(model, (224, 224)), path,
      "googlenet")
  return NAME, variables, num_classes, kwargs
