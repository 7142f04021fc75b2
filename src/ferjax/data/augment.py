"""On-device augmentation of NHWC float32 image batches in [0, 1].

Every op takes an explicit PRNG key, draws independent randomness per image
(vmap over split keys) and keeps static shapes, so the whole pipeline runs
inside a jitted per-device train step instead of on the 2-core host. Apply it
before normalisation: fills (0 = black) and clipping assume values in [0, 1].
"""

from collections.abc import Mapping
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

# Keys `augment` understands, in the order the ops are applied.
AUGMENT_KEYS: tuple[str, ...] = (
    "crop", "flip", "rotation", "brightness", "contrast", "erasing")
_CROP_KEYS = ("padding", "mode", "scale", "ratio", "pad_mode")
_ERASING_KEYS = ("p", "area", "ratio", "value")


def _check_batch(images: jax.Array) -> None:
  if images.ndim != 4:
    raise ValueError(f"expected an NHWC batch, got shape {images.shape}")


def _lerp(bounds: tuple[float, float], u: jax.Array) -> jax.Array:
  """Maps u ~ U[0, 1) onto U[lo, hi): one draw per image compiles faster."""
  return bounds[0] + (bounds[1] - bounds[0]) * u


def _sample_plane(plane: jax.Array, ys: jax.Array, xs: jax.Array,
                  mode: str) -> jax.Array:
  """Bilinearly samples every channel of one HWC image at (ys, xs)."""
  by_channel = jax.vmap(
      lambda p: map_coordinates(p, [ys, xs], order=1, mode=mode, cval=0.0),
      in_axes=2, out_axes=2)
  return by_channel(plane)


def random_crop(key: jax.Array, images: jax.Array, *, padding: int = 4,
                mode: str = "pad", scale: tuple[float, float] = (0.08, 1.0),
                ratio: tuple[float, float] = (3 / 4, 4 / 3),
                pad_mode: str = "reflect") -> jax.Array:
  """Random crop back to the input size, one offset/box per image.

  mode='pad': pad each side by `padding` (pad_mode 'reflect', or 'zero' for
  black borders) and cut an HxW window at a uniform offset; padding=0 is the
  identity. mode='resize': a box of area fraction ~ U(scale) and aspect
  (w/h) ~ logU(ratio), clipped to the image, resized back bilinearly (like
  torchvision's RandomResizedCrop, but clipped instead of retried so shapes
  stay static); `padding` is ignored.
  """
  _check_batch(images)
  n, h, w, c = images.shape
  keys = jax.random.split(key, n)
  if mode == "pad":
    if padding < 0:
      raise ValueError(f"crop padding must be >= 0, got {padding}")
    if pad_mode not in ("reflect", "zero"):
      raise ValueError(
          f"crop pad_mode must be 'reflect' or 'zero', got {pad_mode!r}")
    widths = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    padded = jnp.pad(images, widths,
                     mode="reflect" if pad_mode == "reflect" else "constant")

    def crop_one(k, image):
      offsets = jnp.floor(jax.random.uniform(k, (2,)) * (2 * padding + 1))
      oy, ox = offsets.astype(jnp.int32)
      return jax.lax.dynamic_slice(image, (oy, ox, 0), (h, w, c))

    return jax.vmap(crop_one)(keys, padded)
  if mode == "resize":
    lo, hi = scale
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    rows = jnp.arange(h, dtype=jnp.float32)[:, None]
    cols = jnp.arange(w, dtype=jnp.float32)[None, :]

    def resize_one(k, image):
      u_area, u_ratio, u_y, u_x = jax.random.uniform(k, (4,))
      area = (lo + (hi - lo) * u_area) * h * w
      aspect = jnp.exp(_lerp(log_ratio, u_ratio))
      box_h = jnp.clip(jnp.sqrt(area / aspect), 1.0, h)
      box_w = jnp.clip(jnp.sqrt(area * aspect), 1.0, w)
      y0 = u_y * (h - box_h)
      x0 = u_x * (w - box_w)
      ys = y0 + (rows + 0.5) * box_h / h - 0.5
      xs = x0 + (cols + 0.5) * box_w / w - 0.5
      ys, xs = jnp.broadcast_arrays(ys, xs)
      return _sample_plane(image, ys, xs, "nearest")

    return jax.vmap(resize_one)(keys, images).astype(images.dtype)
  raise ValueError(f"crop mode must be 'pad' or 'resize', got {mode!r}")


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  _check_batch(images)
  flip = _flip_draw(key, images.shape[0])
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def _flip_draw(key: jax.Array, n: int) -> jax.Array:
  return jax.random.bernoulli(key, 0.5, (n,))


def _op_keys(key: jax.Array) -> list[jax.Array]:
  """The sub-keys of crop, flip, rotation, colour and erasing."""
  return list(jax.random.split(key, 5))


def flips(key: jax.Array, n: int, cfg: Any) -> jax.Array:
  """(n,) bool: which of the ``n`` images ``augment(key, images, cfg)``
  mirrors, so that what travels with an image (its face's geometry) can be
  mirrored with it."""
  if not cfg or not _as_dict(cfg, "config").get("flip"):
    return jnp.zeros((n,), bool)
  return _flip_draw(_op_keys(key)[1], n)


def random_rotation(key: jax.Array, images: jax.Array, max_degrees: float,
                    *, fill_mode: str = "constant") -> jax.Array:
  """Rotates each image about its centre by U(-max, max) degrees, bilinearly.

  Pixels from outside the image are black with fill_mode='constant'; any
  other jax.scipy.ndimage.map_coordinates mode ('nearest', 'reflect', ...)
  is passed through.
  """
  _check_batch(images)
  n, h, w, _ = images.shape
  angles = jnp.deg2rad(jax.random.uniform(
      key, (n,), minval=-max_degrees, maxval=max_degrees))
  cy, cx = (h - 1) / 2, (w - 1) / 2
  dy = jnp.arange(h, dtype=jnp.float32)[:, None] - cy
  dx = jnp.arange(w, dtype=jnp.float32)[None, :] - cx

  def rotate_one(angle, image):
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    # Inverse map: where each output pixel comes from in the input.
    ys = cy + cos * dy - sin * dx
    xs = cx + sin * dy + cos * dx
    return _sample_plane(image, ys, xs, fill_mode)

  return jax.vmap(rotate_one)(angles, images).astype(images.dtype)


def brightness_contrast(key: jax.Array, images: jax.Array,
                        brightness: float = 0.0,
                        contrast: float = 0.0) -> jax.Array:
  """torchvision ColorJitter-style brightness, then contrast, per image.

  Brightness scales pixels by b ~ U(max(0, 1-brightness), 1+brightness);
  contrast blends towards the image mean by c drawn the same way. The result
  is clipped to [0, 1]; with both strengths 0 it is the identity.
  """
  _check_batch(images)
  u_b, u_c = jax.random.uniform(key, (2, images.shape[0], 1, 1, 1))

  def factor(strength, u):
    return _lerp((max(0.0, 1 - strength), 1 + strength), u)

  out = images * factor(brightness, u_b)
  mean = jnp.mean(out, axis=(1, 2, 3), keepdims=True)
  out = (out - mean) * factor(contrast, u_c) + mean
  return jnp.clip(out, 0.0, 1.0).astype(images.dtype)


def random_erasing(key: jax.Array, images: jax.Array, p: float, *,
                   area: tuple[float, float] = (0.02, 0.2),
                   ratio: tuple[float, float] = (0.3, 3.3),
                   value: float = 0.0) -> jax.Array:
  """With probability p per image, fills one random rectangle with `value`.

  The rectangle's area fraction is ~ U(area) and its aspect (h/w) ~
  logU(ratio), as in Zhong et al. (2020) and torchvision's RandomErasing;
  sides are rounded and clipped to the image instead of retried.
  """
  _check_batch(images)
  n, h, w, _ = images.shape
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  rows = jnp.arange(h, dtype=jnp.float32)[:, None]
  cols = jnp.arange(w, dtype=jnp.float32)[None, :]

  def mask_one(k):
    u_do, u_area, u_ratio, u_y, u_x = jax.random.uniform(k, (5,))
    target = _lerp(area, u_area) * h * w
    aspect = jnp.exp(_lerp(log_ratio, u_ratio))
    box_h = jnp.clip(jnp.round(jnp.sqrt(target * aspect)), 1, h)
    box_w = jnp.clip(jnp.round(jnp.sqrt(target / aspect)), 1, w)
    y0 = jnp.floor(u_y * (h - box_h + 1))
    x0 = jnp.floor(u_x * (w - box_w + 1))
    inside = ((rows >= y0) & (rows < y0 + box_h)
              & (cols >= x0) & (cols < x0 + box_w))
    return inside & (u_do < p)

  masks = jax.vmap(mask_one)(jax.random.split(key, n))
  return jnp.where(masks[..., None], jnp.asarray(value, images.dtype), images)


def _as_dict(entry: Any, where: str) -> dict[str, Any]:
  if isinstance(entry, Mapping):
    return dict(entry)
  if hasattr(entry, "items"):  # ml_collections ConfigDict is no Mapping.
    return dict(entry.items())
  raise TypeError(f"augmentation {where} must be a mapping, got {entry!r}")


def _check_keys(entry: dict[str, Any], allowed: tuple[str, ...],
                where: str) -> None:
  for name in entry:
    if name not in allowed:
      raise ValueError(f"unknown augmentation key {where}{name!r}; "
                       f"expected one of {', '.join(allowed)}")


def augment(key: jax.Array, images: jax.Array, cfg: Any) -> jax.Array:
  """Applies the augmentations enabled in `cfg` (a mapping or ConfigDict).

  Keys, applied in this order (a missing, None, 0, False or empty entry is
  off; values are Python constants, so cfg is static under jit):
    crop: mapping of `random_crop` keywords (padding, mode, scale, ratio,
      pad_mode), e.g. {'padding': 4, 'mode': 'pad'}.
    flip: True for `random_flip`.
    rotation: max degrees for `random_rotation`.
    brightness, contrast: strengths for `brightness_contrast`.
    erasing: probability p for `random_erasing`, or a mapping of its
      keywords (p, area, ratio, value).
  Each op always gets the same sub-key, so switching one op on or off leaves
  the randomness of the others unchanged.
  """
  if not cfg:
    return images
  cfg = _as_dict(cfg, "config")
  _check_keys(cfg, AUGMENT_KEYS, "")
  k_crop, k_flip, k_rot, k_colour, k_erase = _op_keys(key)
  if cfg.get("crop"):
    crop = _as_dict(cfg["crop"], "'crop'")
    _check_keys(crop, _CROP_KEYS, "crop.")
    images = random_crop(k_crop, images, **crop)
  if cfg.get("flip"):
    images = random_flip(k_flip, images)
  if cfg.get("rotation"):
    images = random_rotation(k_rot, images, float(cfg["rotation"]))
  if cfg.get("brightness") or cfg.get("contrast"):
    images = brightness_contrast(
        k_colour, images, brightness=float(cfg.get("brightness") or 0.0),
        contrast=float(cfg.get("contrast") or 0.0))
  erasing = cfg.get("erasing")
  if erasing:
    if isinstance(erasing, (int, float)):
      erasing = {"p": float(erasing)}
    erasing = _as_dict(erasing, "'erasing'")
    _check_keys(erasing, _ERASING_KEYS, "erasing.")
    if erasing.get("p"):
      images = random_erasing(k_erase, images, **erasing)
  return images


def flip_views(images: jax.Array) -> jax.Array:
  """Test-time views (2, N, H, W, C): each image, then mirrored left-right."""
  _check_batch(images)
  return jnp.stack([images, images[:, :, ::-1]])


def ten_crop(images: jax.Array, crop_size: int | tuple[int, int]) -> jax.Array:
  """Ten-crop test-time views: 4 corners, centre, then each of them mirrored.

  Returns (10, N, h, w, C): views 0-4 are top-left, top-right, bottom-left,
  bottom-right and centre (offset floor((H - h) / 2)); view 5 + i is view i
  flipped left-right. Average the views' softmax probabilities to predict.
  """
  _check_batch(images)
  crop_h, crop_w = ((crop_size, crop_size) if isinstance(crop_size, int)
                    else crop_size)
  _, h, w, _ = images.shape
  if not (0 < crop_h <= h and 0 < crop_w <= w):
    raise ValueError(f"crop size {(crop_h, crop_w)} does not fit images of "
                     f"size {(h, w)}")
  cy, cx = (h - crop_h) // 2, (w - crop_w) // 2
  offsets = ((0, 0), (0, w - crop_w), (h - crop_h, 0),
             (h - crop_h, w - crop_w), (cy, cx))
  crops = [images[:, y:y + crop_h, x:x + crop_w] for y, x in offsets]
  crops += [crop[:, :, ::-1] for crop in crops]
  return jnp.stack(crops)
