"""A torchvision VGG state dict as ferjax ``vgg*`` variables.

The weight mapping is the one ``ferjax.models.vgg.VGG`` documents. Expected
shapes come from ferjax's own model at 224x224x3, so a truncated or foreign
state dict is refused with the key that does not fit.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ferjax.convert import torch_state
from ferjax.models import create_model

IMAGE_SIZE = (224, 224)
# Convolutions in ``features`` -> VGG depth (weight layers = convs + 3).
_DEPTH_BY_CONVS = {8: 11, 10: 13, 13: 16, 16: 19}


def architecture(state: Mapping[str, np.ndarray],
                 path: str | os.PathLike) -> tuple[int, bool]:
  """(depth, batch_norm) of a torchvision VGG state dict, from its keys."""
  convs = conv_indices(state)
  if not convs or convs[0] != 0:
    raise ValueError(
        f"{path}: not a torchvision VGG state dict: no convolution key "
        f"'features.0.weight' (its first keys: "
        f"{', '.join(list(state)[:3]) or 'none'})")
  if len(convs) not in _DEPTH_BY_CONVS:
    raise ValueError(
        f"{path}: {len(convs)} convolutions in 'features' (the last is "
        f"'features.{convs[-1]}.weight'); torchvision's VGG-11/13/16/19 have "
        "8/10/13/16 -- is the state dict truncated?")
  return (_DEPTH_BY_CONVS[len(convs)],
          f"features.{convs[0] + 1}.running_mean" in state)


def conv_indices(state: Mapping[str, np.ndarray]) -> list[int]:
  """Positions in ``features`` of the Conv2d layers (4-D weights), in order."""
  out = []
  for key, value in state.items():
    parts = key.split(".")
    if (len(parts) == 3 and parts[0] == "features" and parts[1].isdigit()
        and parts[2] == "weight" and np.ndim(value) == 4):
      out.append(int(parts[1]))
  return sorted(out)


def _torch_shape(ours: tuple[int, ...], kind: str) -> tuple[int, ...]:
  if kind == "conv":
    return (ours[3], ours[2], ours[0], ours[1])
  if kind == "dense":
    return (ours[1], ours[0])
  return ours


def to_variables(state: Mapping[str, np.ndarray],
                 path: str | os.PathLike) -> tuple[str, dict[str, Any], int]:
  """(model name, ferjax variables, num_classes) of a torchvision state dict.

  Every ferjax variable must come from a key of the expected shape, and every
  key (bar BatchNorm's step counters) must be used.
  """
  depth, batch_norm = architecture(state, path)
  name = f"vgg{depth}{'_bn' if batch_norm else ''}"
  for key in ("classifier.6.weight", "classifier.0.weight"):
    if key not in state or np.ndim(state[key]) != 2:
      raise ValueError(f"{path}: key {key!r} missing or not a matrix; a "
                       f"torchvision {name} state dict has it (truncated?)")
  num_classes = state["classifier.6.weight"].shape[0]
  width = state["classifier.0.weight"].shape[0]
  model = create_model(name, num_classes=num_classes, classifier_width=width)
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, *IMAGE_SIZE, 3)), train=False))
  shapes = jax.tree.map(lambda a: tuple(a.shape), abstract)
  convs = conv_indices(state)
  last_width = shapes["params"][f"Conv_{len(convs) - 1}"]["kernel"][-1]

  # (collection, module, leaf) <- (torch key, kind, transform)
  sources: dict[tuple[str, str, str], tuple[str, str, Callable]] = {}
  identity = np.asarray
  for i, index in enumerate(convs):
    sources["params", f"Conv_{i}", "kernel"] = (
        f"features.{index}.weight", "conv", torch_state.conv_kernel)
    sources["params", f"Conv_{i}", "bias"] = (
        f"features.{index}.bias", "vector", identity)
    if batch_norm:
      bn = f"features.{index + 1}"
      for collection, leaf, torch_leaf in (
          ("params", "scale", "weight"), ("params", "bias", "bias"),
          ("batch_stats", "mean", "running_mean"),
          ("batch_stats", "var", "running_var")):
        sources[collection, f"BatchNorm_{i}", leaf] = (
            f"{bn}.{torch_leaf}", "vector", identity)
  for i, index in enumerate((0, 3, 6)):
    sources["params", f"Dense_{i}", "kernel"] = (
        f"classifier.{index}.weight", "dense",
        torch_state.flatten_dense_kernel(last_width, -(-IMAGE_SIZE[0] // 32))
        if i == 0 else torch_state.dense_kernel)
    sources["params", f"Dense_{i}", "bias"] = (
        f"classifier.{index}.bias", "vector", identity)

  variables: dict[str, Any] = {"params": {}, "batch_stats": {}}
  for collection, modules in shapes.items():
    for module, leaves in modules.items():
      for leaf, ours in leaves.items():
        key, kind, transform = sources[collection, module, leaf]
        if key not in state:
          raise ValueError(
              f"{path}: key {key!r} missing; a torchvision {name} state dict "
              "has it (is the file truncated?)")
        expected = _torch_shape(ours, kind)
        if tuple(state[key].shape) != expected:
          raise ValueError(
              f"{path}: key {key!r} has shape {tuple(state[key].shape)}, "
              f"torchvision's {name} has {expected}")
        variables[collection].setdefault(module, {})[leaf] = (
            np.ascontiguousarray(transform(state[key]), np.float32))
  used = {source[0] for source in sources.values()}
  unused = [k for k in state if k not in used
            and not k.endswith(torch_state.IGNORED_SUFFIX)]
  if unused:
    raise ValueError(
        f"{path}: key {unused[0]!r} is not part of torchvision's {name}"
        f"{f' (and {len(unused) - 1} more)' if len(unused) > 1 else ''}")
  return name, variables, num_classes
