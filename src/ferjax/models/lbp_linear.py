"""The classic hand-crafted FER baseline: LBP histograms and a linear layer."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import fusion


class LBPLinear(nn.Module):
  """The classic hand-crafted baseline: LBP cell histograms, one Dense.

  No CNN at all: the descriptor of ``lbp`` (``model.fusion.lbp``),
  standardised per bin, and a linear classifier, trained by the same loop:
  the "no CNN" reference row. The standardisation is a BatchNorm without
  scale or offset (running statistics in ``batch_stats``), so at evaluation
  the model is one affine map of the histograms; without it the raw bins
  (fractions of a cell, mostly below 0.1) leave SGD at the CNN recipes'
  learning rates stuck at the class prior.
  """

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None
  lbp: fusion.LBPSettings = fusion.LBPSettings()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    spec = fusion.FusionSpec(features=("lbp",), lbp=self.lbp)
    h = nn.BatchNorm(use_running_average=not train, use_scale=False,
                     use_bias=False, axis_name=self.bn_axis_name, momentum=0.9,
                     epsilon=1e-5)(fusion.descriptor(x, spec))
    return nn.Dense(self.num_classes, dtype=self.dtype)(
        h.astype(self.dtype)).astype(jnp.float32)
