"""Turns stored uint8 images into a model's input, identically in training,
evaluation and inference (so a photo sees exactly what the test split saw)."""

from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def to_unit_float(images: jnp.ndarray) -> jnp.ndarray:
  """uint8 [0, 255] -> float32 [0, 1]; augmentation works in this range."""
  return images.astype(jnp.float32) / 255.0


def to_model_input(images: jnp.ndarray, *, image_size: Sequence[int],
                   channels: int, mean: Sequence[float],
                   std: Sequence[float]) -> jnp.ndarray:
  """Resizes, matches channels and normalises float [0, 1] NHWC images.

  Grey images are tiled to three channels when the model wants three (the
  review feeds LeNet-5 32x32x3); colour images are averaged down to one.
  ``mean`` and ``std`` are per output channel or a single value, computed from
  the training split in [0, 1] units.
  """
  n, h, w, c = images.shape
  height, width = image_size
  if (h, w) != (height, width):
    images = jax.image.resize(images, (n, height, width, c), "bilinear")
  if c == 1 and channels == 3:
    images = jnp.tile(images, (1, 1, 1, 3))
  elif c == 3 and channels == 1:
    images = images.mean(axis=-1, keepdims=True)
  elif c != channels:
    raise ValueError(f"cannot turn {c}-channel images into {channels} channels")
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return (images - mean) / std


def channel_stats(chunks: Iterable[np.ndarray]) -> tuple[list[float], list[float]]:
  """Per-channel mean and std in [0, 1] units of uint8 NHWC chunks.

  Accumulated in float64 chunk by chunk, so a split streamed from disk and
  the same split in memory (cut into the same chunks) give identical numbers.
  """
  total = total_sq = None
  count = 0
  for chunk in chunks:
    x = chunk.reshape(-1, chunk.shape[-1]).astype(np.float64) / 255.0
    s, sq = x.sum(axis=0), np.square(x).sum(axis=0)
    total = s if total is None else total + s
    total_sq = sq if total_sq is None else total_sq + sq
    count += len(x)
  if not count:
    raise ValueError("cannot compute statistics of an empty split")
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  return mean.tolist(), std.tolist()
