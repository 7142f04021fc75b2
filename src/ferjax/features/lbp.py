"""Local binary patterns with scikit-image's semantics, and cell histograms.

``lbp_codes`` reproduces ``skimage.feature.local_binary_pattern`` for the
methods ``default``, ``ror``, ``uniform`` and ``nri_uniform``: P points on a
circle of radius R at angles ``2*pi*p/P`` (row offset ``-R sin``, column
offset ``R cos``, both rounded to 5 decimals), sampled by bilinear
interpolation with zeros outside the image, each compared ``>=`` with the
centre. Like scikit-image, ``uniform`` counts the 0/1 transitions of the bit
string without the wrap-around from the last bit to the first. Sampling
offsets are static, so each neighbour is four shifted slices of one padded
image: no gather, and XLA fuses the whole code computation.

scikit-image interpolates in float64 and this module in float32 (what the
models compute in), so where a neighbour lands within float32 rounding of
the centre the comparison can differ; integer offsets (R=1 axis points)
are exact.
"""

import math

import jax.numpy as jnp
import numpy as np

from ferjax.features import cells

LBP_METHODS = ("default", "ror", "uniform", "nri_uniform")


def num_codes(points: int, method: str) -> int:
  """How many distinct code values ``method`` produces (histogram bins)."""
  if method in ("default", "ror"):
    return 2 ** points
  if method == "uniform":
    return points + 2
  if method == "nri_uniform":
    return points * (points - 1) + 3
  raise ValueError(
      f"LBP method: expected one of {', '.join(LBP_METHODS)}, got {method!r}")


def _check(points: int, radius: float, method: str) -> None:
  if not isinstance(points, int) or not 1 <= points <= 24:
    raise ValueError(f"LBP points: expected an integer in [1, 24], got "
                     f"{points!r}")
  if not radius > 0:
    raise ValueError(f"LBP radius: expected a number > 0, got {radius!r}")
  num_codes(points, method)


def _offsets(points: int, radius: float) -> list[tuple[float, float]]:
  angles = 2 * np.pi * np.arange(points, dtype=np.float64) / points
  rows = np.round(-radius * np.sin(angles), 5)
  cols = np.round(radius * np.cos(angles), 5)
  return list(zip(rows.tolist(), cols.tolist()))


def _bits(gray: jnp.ndarray, points: int, radius: float) -> jnp.ndarray:
  """(batch, H, W, P) int32: neighbour p >= centre, in scikit-image order."""
  _, height, width = gray.shape
  pad = math.ceil(radius) + 1
  padded = jnp.pad(gray, ((0, 0), (pad, pad), (pad, pad)))

  def shifted(dr: int, dc: int) -> jnp.ndarray:
    return padded[:, pad + dr:pad + dr + height, pad + dc:pad + dc + width]

  bits = []
  for rp, cp in _offsets(points, radius):
    minr, minc = math.floor(rp), math.floor(cp)
    maxr, maxc = math.ceil(rp), math.ceil(cp)
    dr, dc = np.float32(rp - minr), np.float32(cp - minc)
    # The same association as scikit-image's bilinear_interpolation.
    top = (1 - dc) * shifted(minr, minc) + dc * shifted(minr, maxc)
    bottom = (1 - dc) * shifted(maxr, minc) + dc * shifted(maxr, maxc)
    texture = (1 - dr) * top + dr * bottom
    bits.append(texture - gray >= 0)
  return jnp.stack(bits, axis=-1).astype(jnp.int32)


def lbp_codes(gray: jnp.ndarray, *, points: int = 8, radius: float = 1.0,
              method: str = "uniform") -> jnp.ndarray:
  """LBP code of every pixel of a (batch, H, W) float image, as int32.

  Values lie in ``[0, num_codes(points, method))``; see the module docstring
  for the exact semantics.
  """
  _check(points, radius, method)
  if gray.ndim != 3:
    raise ValueError(f"lbp_codes: expected (batch, height, width), got shape "
                     f"{gray.shape}")
  bits = _bits(gray.astype(jnp.float32), points, radius)
  weights = jnp.asarray(2 ** np.arange(points), jnp.int32)
  if method == "default":
    return bits @ weights
  if method == "ror":
    # Minimum over the P bit rotations of the code.
    rotations = [jnp.roll(bits, -k, axis=-1) @ weights for k in range(points)]
    return jnp.min(jnp.stack(rotations), axis=0)
  changes = jnp.sum(bits[..., :-1] != bits[..., 1:], axis=-1)
  ones = jnp.sum(bits, axis=-1)
  if method == "uniform":
    return jnp.where(changes <= 2, ones, points + 1)
  # nri_uniform: a uniform pattern is coded by its number of ones and the
  # rotation that brings its run of ones to the start.
  first_one = jnp.argmax(bits, axis=-1)
  first_zero = jnp.argmax(1 - bits, axis=-1)
  rotation = jnp.where(bits[..., 0] == 1, ones - first_zero,
                       points - first_one)
  code = 1 + (ones - 1) * points + rotation
  code = jnp.where(ones == 0, 0, code)
  code = jnp.where(ones == points, points * (points - 1) + 1, code)
  return jnp.where(changes <= 2, code, points * (points - 1) + 2)


def cell_histograms(codes: jnp.ndarray, *, num_bins: int,
                    grid: tuple[int, int]) -> jnp.ndarray:
  """Normalised code histograms of a ``grid`` of cells: (batch, gh, gw, bins).

  Each cell's histogram sums to 1 (cells as ``cells.cell_means``).
  """
  one_hot = (codes[..., None] == jnp.arange(num_bins)).astype(jnp.float32)
  return cells.cell_means(one_hot, grid=grid)
