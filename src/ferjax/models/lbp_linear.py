"""The classic hand-crafted FER baseline: LBP histograms and a linear layer."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import fusion


class LBPLinear(nn.Module):
  """The classic hand-crafted baseline: LBP cell histograms, one Dense.

  No CNN at all: the descriptor of ``lbp`` (``model.fusion.lbp``),
  standardised per bin (``fusion.standardize``: an affine map at
  evaluation, so the model stays one linear classifier of the histograms),
  and a linear classifier, trained by the same loop: the "no CNN" reference
  row. Without the standardisation the raw bins leave SGD at the CNN
  recipes' learning rates stuck at the class prior.
  """

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None
  lbp: fusion.LBPSettings = fusion.LBPSettings()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    spec = fusion.FusionSpec(features=("lbp",), lbp=self.lbp)
    h = fusion.standardize(fusion.descriptor(x, spec), train=train,
                           axis_name=self.bn_axis_name)
    return nn.Dense(self.num_classes, dtype=self.dtype)(
        h.astype(self.dtype)).astype(jnp.float32)
