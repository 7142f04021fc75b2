"""Turns stored uint8 images into a model's input, identically in training,
evaluation and inference (so a photo sees exactly what the test split saw)."""

from collections.abc import Sequence

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


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
  """Per-channel mean and std in [0, 1] units of a uint8 NHWC array.

  Accumulated in float64 over the whole split so the result does not depend on
  how the split is batched.
  """
  x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
  return x.mean(axis=0).tolist(), x.std(axis=0).tolist()
