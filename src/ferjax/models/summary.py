"""Size and cost of every registered model at one input shape (`ferjax models`).

Nothing here initialises real weights or compiles: parameter and activation
sizes come from ``jax.eval_shape`` and FLOPs from XLA's cost analysis of the
lowered eval forward (within 0.2% of the compiled program's), so even the
138M-parameter VGGs, and every model again with fusion, take seconds.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ferjax import models

# Layers whose outputs count as activations; ReLU and pooling are functions,
# not modules, so their outputs are (deliberately) not counted separately.
_ACTIVATION_LAYERS = (nn.Conv, nn.Dense, nn.BatchNorm)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
  shape = tuple(input_shape)
  if len(shape) != 3 or not all(
      isinstance(d, (int, np.integer)) and d > 0 for d in shape):
    raise ValueError(
        "input_shape: expected three positive integers (height, width, "
        f"channels), got {input_shape!r}")
  return shape


def model_summary(name: str, input_shape: Sequence[int], num_classes: int,
                  fusion: Mapping[str, Any] | None = None,
                  kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Parameters, FLOPs and activation bytes of model ``name`` per image.

  ``params`` counts the ``params`` collection (BatchNorm running statistics
  are not parameters). ``flops`` is XLA's ``cost_analysis()['flops']`` for the
  lowered (uncompiled) eval forward (``train=False``) at batch 1; a
  multiply-add counts as two. ``activation_bytes`` is the float32 size of the
  output of every Conv, Dense and BatchNorm layer in that forward
  (``capture_intermediates``) at batch 1: what a backward pass must keep at
  least, excluding the input.
  GoogLeNet's auxiliary heads run only in training and count in ``params``
  but not in ``flops`` or ``activation_bytes``. ``fusion`` is a
  ``config.model.fusion``; the features' own FLOPs count in ``flops``.
  ``kwargs`` are the family's options (``config.model.kwargs``).
  """
  height, width, channels = check_input_shape(input_shape)
  model = models.create_model(name, num_classes=num_classes, fusion=fusion,
                              **(kwargs or {}))
  x = jax.ShapeDtypeStruct((1, height, width, channels), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  params = sum(int(np.prod(leaf.shape))
               for leaf in jax.tree_util.tree_leaves(variables["params"]))

  def capture(module: nn.Module, method_name: str) -> bool:
    return method_name == "__call__" and isinstance(module, _ACTIVATION_LAYERS)

  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, capture_intermediates=capture,
                               mutable=["intermediates"]), variables, x)
  # Keep capture_intermediates' "__call__" entries, not the model's own sows.
  activation_bytes = sum(
      4 * int(np.prod(leaf.shape))
      for path, leaf in jax.tree_util.tree_leaves_with_path(state)
      if any(getattr(k, "key", None) == "__call__" for k in path))

  lowered = jax.jit(lambda v, x: model.apply(v, x)).lower(variables, x)
  flops = int(lowered.cost_analysis()["flops"])
  return {"name": name, "params": params, "flops": flops,
          "activation_bytes": activation_bytes}


def format_models_table(rows: Sequence[dict[str, Any]]) -> str:
  """Aligned text table of ``model_summary`` rows, one model per line.

  Rows with a ``fused`` summary (``--fusion``) get two more columns: what
  fusion adds in parameters and in MFLOPs per image ("-" where the model
  takes no fusion). Rows with ``skipped`` (a model this input does not fit)
  close the table, each with its reason.
  """
  fused = any("fused" in row for row in rows)
  header = ("model", "params", "MFLOPs/image", "activations MiB/image") + (
      ("fusion +params", "fusion +MFLOPs") if fused else ())

  def extra(row: dict[str, Any]) -> tuple[str, ...]:
    if not fused:
      return ()
    if row.get("fused") is None:
      return ("-", "-")
    return (f"{row['fused']['params'] - row['params']:+,}",
            f"{(row['fused']['flops'] - row['flops']) / 1e6:+,.2f}")

  shown = [row for row in rows if "skipped" not in row]
  lines = [header] + [
      (row["name"], f"{row['params']:,}", f"{row['flops'] / 1e6:,.1f}",
       f"{row['activation_bytes'] / 2**20:,.2f}") + extra(row)
      for row in shown]
  widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
  return "\n".join(
      ["  ".join([line[0].ljust(widths[0])]
                 + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:])])
       for line in lines]
      + [f"{row['name'].ljust(widths[0])}  not shown: {row['skipped']}"
         for row in rows if "skipped" in row])
