"""Mixup and CutMix: each training image blended with a partner, labels too.

Mixup (Zhang et al. 2018) takes ``lam * x + (1 - lam) * x'``; CutMix (Yun et
al. 2019) pastes a box of ``x'`` covering ``1 - lam`` of the image. Either
way the targets are ``lam`` of the example's label and ``1 - lam`` of its
partner's (``losses.Mix``), with ``lam ~ Beta(alpha, alpha)`` drawn once per
global batch, as both papers do. Shapes are static (the box is a mask), so
mixing runs inside the jitted train step like the rest of the augmentation.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class MixSpec:
  """``input.mix``, static under jit: 0 turns a method off."""

  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0
  # With both on, the probability that a batch uses CutMix (timm's
  # switch_prob); otherwise the one that is on is always used.
  cutmix_prob: float = 0.5

  @classmethod
  def from_config(cls, mix: Any) -> "MixSpec | None":
    """The spec of an ``input.mix`` section; None when mixing is off."""
    if not mix or not (mix.get("mixup_alpha") or mix.get("cutmix_alpha")):
      return None
    return cls(mixup_alpha=float(mix.get("mixup_alpha") or 0.0),
               cutmix_alpha=float(mix.get("cutmix_alpha") or 0.0),
               cutmix_prob=float(mix.get("cutmix_prob", 0.5)))


def mixup(images: jax.Array, partners: jax.Array,
          lam: jax.Array) -> jax.Array:
  """``lam`` of each image and ``1 - lam`` of its partner, pixel by pixel."""
  return lam * images + (1.0 - lam) * partners


def cutmix_mask(key: jax.Array, lam: jax.Array, height: int,
                width: int) -> jax.Array:
  """A (height, width) box, True inside, of about ``1 - lam`` of the image.

  Sides ``sqrt(1 - lam)`` of the image's, centred uniformly and clipped to
  the image (Yun et al.), so the box can cover less than asked for near a
  border: the mixing weight is the area actually pasted (``cutmix``).
  """
  u_y, u_x = jax.random.uniform(key, (2,))
  side = jnp.sqrt(1.0 - lam)
  box_h, box_w = jnp.floor(side * height), jnp.floor(side * width)
  cy, cx = jnp.floor(u_y * height), jnp.floor(u_x * width)
  y0, y1 = jnp.clip(cy - box_h // 2, 0, height), jnp.clip(
      cy + box_h - box_h // 2, 0, height)
  x0, x1 = jnp.clip(cx - box_w // 2, 0, width), jnp.clip(
      cx + box_w - box_w // 2, 0, width)
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


def cutmix(key: jax.Array, images: jax.Array, partners: jax.Array,
           lam: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Each NHWC image with the same box pasted from its partner.

  Returns the images and the weight of their own labels: the fraction of
  pixels not pasted.
  """
  _, height, width, _ = images.shape
  box = cutmix_mask(key, lam, height, width)
  mixed = jnp.where(box[None, :, :, None], partners, images)
  return mixed, 1.0 - box.mean()


def mix(key: jax.Array, images: jax.Array, partners: jax.Array,
        spec: MixSpec) -> tuple[jax.Array, jax.Array]:
  """Mixup or CutMix of ``images`` with ``partners``: (images, lam).

  The same ``key`` gives the same ``lam`` and box on every device, so a
  global batch is mixed alike whatever the device count.
  """
  k_choice, k_mixup, k_cutmix, k_box = jax.random.split(key, 4)

  def draw(k, alpha):
    return jax.random.beta(k, alpha, alpha).astype(jnp.float32)

  if not spec.cutmix_alpha:
    lam = draw(k_mixup, spec.mixup_alpha)
    return mixup(images, partners, lam), lam
  cut_images, cut_lam = cutmix(k_box, images, partners,
                               draw(k_cutmix, spec.cutmix_alpha))
  if not spec.mixup_alpha:
    return cut_images, cut_lam
  lam = draw(k_mixup, spec.mixup_alpha)
  use_cutmix = jax.random.bernoulli(k_choice, spec.cutmix_prob)
  return (jnp.where(use_cutmix, cut_images, mixup(images, partners, lam)),
          jnp.where(use_cutmix, cut_lam, lam))
