"""The classic hand-crafted FER baseline: LBP histograms and a linear layer."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import fusion


class LBPLinear(nn.Module):
  """The classic hand-crafted baseline: LBP cell histograms, one Dense.

  No CNN at all: the descriptor of ``lbp`` (``model.fusion.lbp``) and a
  linear classifier trained by the same loop, the "no CNN" reference row.
  """

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None  # No BatchNorm; accepted for a uniform API.
  lbp: fusion.LBPSettings = fusion.LBPSettings()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    del train  # Nothing behaves differently in training.
    spec = fusion.FusionSpec(features=("lbp",), lbp=self.lbp)
    h = fusion.descriptor(x, spec)
    return nn.Dense(self.num_classes, dtype=self.dtype)(
        h.astype(self.dtype)).astype(jnp.float32)
