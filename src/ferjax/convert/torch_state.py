"""Checked assembly of ferjax variables from a PyTorch state dict.

A weight mapping names, for every ferjax variable, the torch key it comes
from and how to transform it; ``assemble`` fills the variables of the model's
own shapes and refuses, naming the file and the key, a state dict that is
truncated, of another shape or carries keys the model has no place for.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# (collection, '/'-joined module path, leaf) -> (torch key, transform)
Sources = dict[tuple[str, str, str], tuple[str, Callable[[np.ndarray],
                                                          np.ndarray]]]
IGNORED_SUFFIX = ".num_batches_tracked"


def conv_kernel(w: np.ndarray) -> np.ndarray:
  return w.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def dense_kernel(w: np.ndarray) -> np.ndarray:
  return w.T


def flatten_dense_kernel(channels: int, side: int
                         ) -> Callable[[np.ndarray], np.ndarray]:
  """A dense layer after a flatten: torch's C,H,W rows become H,W,C."""

  def transform(w: np.ndarray) -> np.ndarray:
    out = w.shape[0]
    return w.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(
        side * side * channels, out)

  return transform


def shapes(model: Any, image_size: tuple[int, int]) -> dict[str, Any]:
  """The model's variable shapes at ``image_size`` RGB, training mode."""
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, *image_size, 3)), train=True))
  return jax.tree.map(lambda a: tuple(a.shape), abstract)


def assemble(state: Mapping[str, np.ndarray], sources: Sources,
             expected: Mapping[str, Any], path: str | os.PathLike,
             name: str) -> dict[str, Any]:
  """ferjax variables of the ``expected`` shapes, each from its source key.

  Every variable must come from a key whose transformed value has the
  variable's shape, and every key (bar BatchNorm's step counters) be used.
  """
  variables: dict[str, Any] = {}

  def walk(tree, collection, prefix):
    for key, value in tree.items():
      if isinstance(value, dict):
        walk(value, collection, f"{prefix}{key}/")
        continue
      module = prefix.rstrip("/")
      torch_key, transform = sources[collection, module, key]
      if torch_key not in state:
        raise ValueError(f"{path}: key {torch_key!r} missing; a torchvision "
                         f"{name} state dict has it (is the file truncated?)")
      array = np.ascontiguousarray(transform(state[torch_key]), np.float32)
      if array.shape != tuple(value):
        raise ValueError(
            f"{path}: key {torch_key!r} has shape "
            f"{tuple(state[torch_key].shape)}, which does not fit "
            f"torchvision's {name} (ferjax {collection}/{module}/{key} "
            f"{tuple(value)})")
      node = variables.setdefault(collection, {})
      for part in module.split("/"):
        node = node.setdefault(part, {})
      node[key] = array

  for collection in ("params", "batch_stats"):
    walk(expected.get(collection, {}), collection, "")
  used = {source for source, _ in sources.values()}
  unused = [k for k in state if k not in used
            and not k.endswith(IGNORED_SUFFIX)]
  if unused:
    raise ValueError(
        f"{path}: key {unused[0]!r} is not part of torchvision's {name}"
        f"{f' (and {len(unused) - 1} more)' if len(unused) > 1 else ''}")
  variables.setdefault("batch_stats", {})
  return variables
