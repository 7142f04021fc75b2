"""Max-pooling written so that XLA:CPU trains it fast; values equal flax's.

``flax.linen.max_pool`` lowers to ``reduce_window``, whose gradient is
``select_and_scatter_add``, slow on XLA:CPU: with this module LeNet-5's and
VGG-11's train steps run 12-15% faster (``benchmarks/README.md``). Here the
maximum is a reshape-and-max when the windows tile the input, and a running
``maximum`` of strided slices when they overlap; both differentiate into
plain elementwise code. Forward values equal ``nn.max_pool`` exactly. The
gradient is the same wherever a window has one maximum; where several inputs
tie for it, ``nn.max_pool`` sends the whole gradient to one of them and this
splits it between them, an equally valid subgradient (after a ReLU, ties are
at zero, where the ReLU stops the gradient either way).
"""

from collections.abc import Sequence

import jax.numpy as jnp
from jax import lax


def max_pool(x: jnp.ndarray, window_shape: Sequence[int],
             strides: Sequence[int] | None = None,
             padding: str | Sequence[tuple[int, int]] = "VALID"
             ) -> jnp.ndarray:
  """``nn.max_pool`` over the two spatial axes of an NHWC batch."""
  if x.ndim != 4 or len(window_shape) != 2:
    raise ValueError(f"max_pool: expected NHWC input and a 2-D window, got "
                     f"shape {x.shape} and window {tuple(window_shape)}")
  window = tuple(window_shape)
  strides = tuple(strides) if strides is not None else window
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
  if any(lo or hi for lo, hi in padding):
    x = jnp.pad(x, [(0, 0), *padding, (0, 0)], constant_values=-jnp.inf)
  (kh, kw), (sh, sw) = window, strides
  n, h, w, c = x.shape
  oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
  if window == strides:
    x = x[:, :oh * kh, :ow * kw]
    return x.reshape(n, oh, kh, ow, kw, c).max(axis=(2, 4))
  y = None
  for i in range(kh):
    for j in range(kw):
      tap = x[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw]
      y = tap if y is None else jnp.maximum(y, tap)
  return y

