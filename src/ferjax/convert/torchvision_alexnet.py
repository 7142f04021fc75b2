"""torchvision's AlexNet state dict as ``alexnet_tv`` variables.

``features.0/3/6/8/10`` are Conv_0..4, ``classifier.1/4/6`` Dense_0..2
(Dense_0 reads the 256 x 6 x 6 adaptive pool, flattened C,H,W by torch and
H,W,C by ferjax). Shapes are checked against ferjax's own model at 224x224.
"""

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ferjax.models import create_model
from ferjax.convert import torch_state

NAME = "alexnet_tv"
_CONVS = (0, 3, 6, 8, 10)
_DENSES = (1, 4, 6)


def is_alexnet(state: Mapping[str, np.ndarray]) -> bool:
  """torchvision's AlexNet, told from VGG by its ``classifier.1`` layer."""
  return "classifier.1.weight" in state and "features.0.weight" in state


def to_variables(state: Mapping[str, np.ndarray], path: str | os.PathLike
                 ) -> tuple[str, dict[str, Any], int, dict[str, Any]]:
  """(model name, variables, num_classes, model kwargs) of the state dict."""
  for key in ("classifier.6.weight", "classifier.4.weight"):
    if key not in state or np.ndim(state[key]) != 2:
      raise ValueError(f"{path}: key {key!r} missing or not a matrix; a "
                       f"torchvision AlexNet state dict has it (truncated?)")
  num_classes = state["classifier.6.weight"].shape[0]
  width = state["classifier.4.weight"].shape[0]
  kwargs = {} if width == 4096 else {"classifier_width": width}
  model = create_model(NAME, num_classes=num_classes, **kwargs)
  sources: torch_state.Sources = {}
  for i, index in enumerate(_CONVS):
    sources["params", f"Conv_{i}", "kernel"] = (
        f"features.{index}.weight", torch_state.conv_kernel)
    sources["params", f"Conv_{i}", "bias"] = (f"features.{index}.bias",
                                              np.asarray)
  for i, index in enumerate(_DENSES):
    sources["params", f"Dense_{i}", "kernel"] = (
        f"classifier.{index}.weight",
        torch_state.flatten_dense_kernel(256, 6) if i == 0
        else torch_state.dense_kernel)
    sources["params", f"Dense_{i}", "bias"] = (f"classifier.{index}.bias",
                                               np.asarray)
  variables = torch_state.assemble(
      state, sources, torch_state.shapes(model, (224, 224)), path,
      "alexnet")
  return NAME, variables, num_classes, kwargs
