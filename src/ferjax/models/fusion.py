"""Hand-crafted features fused with any CNN, inside the model.

Fusion is part of the model so that training, evaluation, ten-crop,
``predict`` and checkpoints see one ordinary flax module. Features are
computed from the (augmented, normalised) input on device; they are
constants of the image under ``stop_gradient``, so they add no parameter,
no optimizer state, no weight decay and no backward work. LBP codes do not
change under the per-channel affine normalisation (the comparisons only
need a positive std); a colour input is averaged to grey first.

* ``early``: the LBP code map scaled to [0, 1] and the Gabor magnitudes
  (divided by each kernel's L1 norm, so they stay on the image's scale) are
  concatenated to the image as extra channels. The CNN's first layer grows
  by those input channels; nothing else changes.
* ``late``: the LBP cell histograms and the per-cell mean Gabor magnitudes,
  standardised per element (``standardize``, see ``standardize``), go
  through ``Dense(width)`` and ReLU, and their product with a bias-free
  ``Dense(num_classes)`` is added to the CNN's logits. That is exactly the
  classifier applied to the CNN's penultimate features concatenated with the
  fusion features (a linear layer on a concatenation is the sum of two
  linear layers), so it works for every family without reaching inside it,
  and the CNN's variables keep their names under ``backbone``.

The face's geometry (``features=('geometry',)``, mode ``early``) is no
function of the pixels: it is each example's geometric descriptor
(``data.geometry_features``: the geometry_svm family's features, the
training split's standardisation), an explicit second input of the model
(``geometry=``) that the pipeline carries beside each image. It joins the
CNN's penultimate features before the classifier: a bias-free
``Dense(num_classes)`` of it (``geometry_classifier``) added to the CNN's
logits, the classifier of the concatenation, trained end to end. A vector
has no pixels to be channels of, so this is the earliest place it can join
(the score-level late fusion of geometry is ``ferjax fuse``). The
descriptor enters divided by sqrt(D): its D = 948 standardised elements
are strongly correlated (neighbouring points move together), so at unit
scale its covariance's largest eigenvalue approaches D and SGD at a CNN
recipe's learning rate overshoots (a tiny synthetic run at the
quickstart's 0.05 diverged in its first steps); at 1/sqrt(D) that
eigenvalue is at most 1 (the trace is D), the scale the recipes assume.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ferjax import features
from ferjax.landmarks.action_units import DESCRIPTOR_SIZE as GEOMETRY_SIZE

FEATURES = ("lbp", "gabor", "geometry")
GEOMETRY = "geometry"
MODES = ("early", "late")


@dataclasses.dataclass(frozen=True)
class LBPSettings:
  """``model.fusion.lbp``: the operator and the histogram grid."""

  points: int = 8
  radius: float = 1.0
  method: str = "uniform"
  grid: tuple[int, int] = (6, 6)


@dataclasses.dataclass(frozen=True)
class GaborSettings:
  """``model.fusion.gabor``: scales (sigma with wavelength) x orientations."""

  ksize: int = 9
  sigmas: tuple[float, ...] = (2.0, 3.5)
  wavelengths: tuple[float, ...] = (4.0, 8.0)
  orientations: int = 4
  gamma: float = 0.5
  grid: tuple[int, int] = (6, 6)

  @property
  def num_filters(self) -> int:
    return len(self.sigmas) * self.orientations


@dataclasses.dataclass(frozen=True)
class FusionSpec:
  """``config.model.fusion`` as hashable values (a flax module attribute)."""

  features: tuple[str, ...] = ()
  mode: str = "late"
  width: int = 64
  standardize: bool = True
  lbp: LBPSettings = LBPSettings()
  gabor: GaborSettings = GaborSettings()

  @classmethod
  def from_config(cls, fusion: Mapping[str, Any] | None) -> "FusionSpec":
    """The spec of ``config.model.fusion``; ``None`` (older runs): no fusion."""
    if fusion is None:
      return cls()
    fusion = dict(fusion)
    lbp = dict(fusion.pop("lbp", None) or {})
    gabor = dict(fusion.pop("gabor", None) or {})
    for settings in (lbp, gabor):
      settings.update({k: tuple(v) for k, v in settings.items()
                       if isinstance(v, list)})
    return cls(features=tuple(fusion.get("features", ())),
               mode=fusion.get("mode", "late"),
               width=fusion.get("width", 64),
               # Absent from configs written before it existed: raw inputs.
               standardize=fusion.get("standardize", False),
               lbp=LBPSettings(**lbp), gabor=GaborSettings(**gabor))


def fuses_geometry(model_config: Mapping[str, Any]) -> bool:
  """Whether ``config.model`` fuses the face's geometry: its input is then
  each image with its geometric descriptor, not the image alone."""
  fusion = model_config.get("fusion") or {}
  return GEOMETRY in tuple(fusion.get("features", ()) or ())


def _gray(x: jnp.ndarray) -> jnp.ndarray:
  return jnp.mean(x.astype(jnp.float32), axis=-1)


def _gabor_bank(settings: GaborSettings) -> np.ndarray:
  bank = features.gabor_bank(
      ksize=settings.ksize, sigmas=settings.sigmas,
      wavelengths=settings.wavelengths, orientations=settings.orientations,
      gamma=settings.gamma)
  # Scale each even/odd pair by the even kernel's L1 norm.
  norms = np.abs(bank[..., 0::2]).sum(axis=(0, 1, 2))
  return bank / np.repeat(norms, 2)


def feature_maps(x: jnp.ndarray, spec: FusionSpec) -> jnp.ndarray:
  """(batch, H, W, k) early-fusion channels of an NHWC batch, float32."""
  gray = _gray(x)
  maps = []
  if "lbp" in spec.features:
    s = spec.lbp
    codes = features.lbp_codes(gray, points=s.points, radius=s.radius,
                               method=s.method)
    scale = max(features.num_codes(s.points, s.method) - 1, 1)
    maps.append((codes.astype(jnp.float32) / scale)[..., None])
  if "gabor" in spec.features:
    maps.append(features.gabor_magnitudes(gray, _gabor_bank(spec.gabor)))
  return jax.lax.stop_gradient(jnp.concatenate(maps, axis=-1))


def descriptor(x: jnp.ndarray, spec: FusionSpec) -> jnp.ndarray:
  """(batch, D) late-fusion vector: LBP histograms, then Gabor cell means."""
  gray = _gray(x)
  parts = []
  if "lbp" in spec.features:
    s = spec.lbp
    codes = features.lbp_codes(gray, points=s.points, radius=s.radius,
                               method=s.method)
    parts.append(features.cell_histograms(
        codes, num_bins=features.num_codes(s.points, s.method), grid=s.grid))
  if "gabor" in spec.features:
    magnitudes = features.gabor_magnitudes(gray, _gabor_bank(spec.gabor))
    parts.append(features.cell_means(magnitudes, grid=spec.gabor.grid))
  flat = [p.reshape(p.shape[0], -1) for p in parts]
  return jax.lax.stop_gradient(jnp.concatenate(flat, axis=-1))


def standardize(h: jnp.ndarray, *, train: bool, axis_name: str | None,
                name: str | None = None) -> jnp.ndarray:
  """Each element of a (batch, D) descriptor to zero mean and unit variance.

  Histogram fractions (mostly below 0.1) and Gabor cell means are far from
  the unit scale the following Dense's initialisation and the CNN recipes'
  learning rates assume; unstandardised, ``lbp_linear`` never left the class
  prior. A BatchNorm without scale or offset does it from the training
  batches' statistics (synchronised over ``axis_name``) and keeps running
  ones in ``batch_stats``: at evaluation it is a fixed affine map, so the
  model stays what it was, a Dense on the descriptor, with no parameter
  added (the Dense that follows has the scale and offset already). A
  per-example norm would not do: it mixes the bins of one image instead of
  putting each bin on the scale of the data.
  """
  return nn.BatchNorm(use_running_average=not train, use_scale=False,
                      use_bias=False, axis_name=axis_name, momentum=0.9,
                      epsilon=1e-5, name=name)(h)


def extra_channels(spec: FusionSpec) -> int:
  """Input channels early fusion adds to the CNN."""
  return (("lbp" in spec.features)
          + ("gabor" in spec.features) * spec.gabor.num_filters)


class Fused(nn.Module):
  """A CNN (``backbone``) with hand-crafted features fused per ``spec``."""

  backbone: nn.Module
  spec: FusionSpec
  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False,
               geometry: jnp.ndarray | None = None) -> jnp.ndarray:
    if GEOMETRY in self.spec.features:
      return self._with_geometry(x, geometry, train)
    if self.spec.mode == "early":
      maps = feature_maps(x, self.spec).astype(x.dtype)
      return self.backbone(jnp.concatenate([x, maps], axis=-1), train=train)
    logits = self.backbone(x, train=train)
    h = descriptor(x, self.spec)
    if self.spec.standardize:
      h = standardize(h, train=train, axis_name=self.bn_axis_name,
                      name="fusion_standardize")
    h = h.astype(self.dtype)
    h = nn.relu(nn.Dense(self.spec.width, dtype=self.dtype,
                         name="fusion_dense")(h))
    fused = nn.Dense(self.num_classes, use_bias=False, dtype=self.dtype,
                     name="fusion_classifier")(h)
    return logits + fused.astype(jnp.float32)

  def _with_geometry(self, x: jnp.ndarray, geometry: jnp.ndarray | None,
                     train: bool) -> jnp.ndarray:
    if geometry is None:
      if not self.is_initializing():
        raise ValueError(
            "model.fusion.features has 'geometry': the model reads each "
            "image's geometric descriptor (geometry=, from the dataset's "
            "landmark cache, data.geometry_features) beside it, and none "
            "was given")
      # Initialisation needs only the shapes.
      geometry = jnp.zeros((x.shape[0], GEOMETRY_SIZE), jnp.float32)
    if geometry.shape != (x.shape[0], GEOMETRY_SIZE):
      raise ValueError(f"geometry: expected ({x.shape[0]}, {GEOMETRY_SIZE}) "
                       f"descriptors, got {geometry.shape}")
    logits = self.backbone(x, train=train)
    scaled = geometry.astype(jnp.float32) / np.sqrt(GEOMETRY_SIZE)
    fused = nn.Dense(self.num_classes, use_bias=False, dtype=self.dtype,
                     name="geometry_classifier")(scaled.astype(self.dtype))
    return logits + fused.astype(jnp.float32)
