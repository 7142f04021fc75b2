"""Pooling of per-pixel feature maps over a grid of cells."""

import jax.numpy as jnp
import numpy as np


def cell_means(maps: jnp.ndarray, *, grid: tuple[int, int]) -> jnp.ndarray:
  """Mean of (batch, H, W, K) maps over a ``grid`` of cells: (b, gh, gw, K).

  Row ``r`` belongs to cell ``r * gh // H`` (likewise columns), so cells
  differ by at most one pixel when the grid does not divide the image. Two
  small matrix products with constant membership matrices: XLA runs them
  faster on CPU than a scatter-add or a reshape that needs equal cells.
  """
  _, height, width, _ = maps.shape
  grid_h, grid_w = grid
  if not (1 <= grid_h <= height and 1 <= grid_w <= width):
    raise ValueError(f"cell grid: expected at most {height}x{width} cells for "
                     f"a {height}x{width} map, got {grid_h}x{grid_w}")
  rows = np.eye(grid_h, dtype=np.float32)[np.arange(height) * grid_h // height]
  cols = np.eye(grid_w, dtype=np.float32)[np.arange(width) * grid_w // width]
  counts = np.outer(rows.sum(0), cols.sum(0))[..., None]
  return jnp.einsum("hg,bhwk,wf->bgfk", rows, maps, cols,
                    precision="highest") / counts
