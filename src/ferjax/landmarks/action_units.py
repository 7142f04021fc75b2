"""FACS-like geometric measures and the Procrustes-aligned mesh.

Each measure is a proxy of one action unit (Ekman and Friesen's FACS)
computed from FaceMesh points: a vertical or horizontal distance between
named points (``topology``) of a mesh made upright by its eye line (head
roll removed) and scaled by its inter-ocular distance (the distance between
the eye centres, each the mean of its two corners), with y pointing up.
Every measure grows with its action. Yaw and pitch are not corrected: the
measures compare faces seen from the front.

A new measure is one function ``(normalised points) -> (...,) values`` here
and one entry of ``MEASURES`` (its AU, name and the face region it reads;
tests/unit/test_action_units.py moves only that region and checks it).
"""

import dataclasses
from collections.abc import Callable

import numpy as np

from ferjax.landmarks import topology as t


def normalise(points: np.ndarray) -> np.ndarray:
  """(..., 468, 2|3) image points -> (..., 468, 2): origin between the eye
  centres, eye line horizontal, inter-ocular distance 1, y up."""
  xy = np.asarray(points, np.float64)[..., :2]
  right = xy[..., [t.RIGHT_EYE_OUTER, t.RIGHT_EYE_INNER], :].mean(-2)
  left = xy[..., [t.LEFT_EYE_OUTER, t.LEFT_EYE_INNER], :].mean(-2)
  # The subject's right eye is on the image's left: the eye line points
  # from it to the left eye.
  line = left - right
  iod = np.linalg.norm(line, axis=-1)
  if np.any(iod <= 0):
    raise ValueError("a mesh whose eye centres coincide has no scale")
  cos, sin = line[..., 0] / iod, line[..., 1] / iod
  centred = xy - ((left + right) / 2)[..., None, :]
  x = (centred[..., 0] * cos[..., None] + centred[..., 1] * sin[..., None])
  y = (-centred[..., 0] * sin[..., None] + centred[..., 1] * cos[..., None])
  return np.stack([x, -y], axis=-1) / iod[..., None, None]


def _y(p: np.ndarray, *indices: int) -> np.ndarray:
  return p[..., list(indices), 1].mean(-1)


def inner_brow_raise(p: np.ndarray) -> np.ndarray:
  """Inner brow ends above the inner eye corners."""
  return (_y(p, t.RIGHT_BROW_INNER, t.LEFT_BROW_INNER)
          - _y(p, t.RIGHT_EYE_INNER, t.LEFT_EYE_INNER))


def outer_brow_raise(p: np.ndarray) -> np.ndarray:
  """Outer brow ends above the outer eye corners."""
  return (_y(p, t.RIGHT_BROW_OUTER, t.LEFT_BROW_OUTER)
          - _y(p, t.RIGHT_EYE_OUTER, t.LEFT_EYE_OUTER))


def brow_lowerer(p: np.ndarray) -> np.ndarray:
  """Inner brow ends drawn together: minus their horizontal gap."""
  return -(p[..., t.LEFT_BROW_INNER, 0] - p[..., t.RIGHT_BROW_INNER, 0])


def upper_lid_raiser(p: np.ndarray) -> np.ndarray:
  """Upper lids above their eye's corner line (both eyes' mean)."""
  return (_y(p, t.RIGHT_UPPER_LID, t.LEFT_UPPER_LID)
          - _y(p, t.RIGHT_EYE_OUTER, t.RIGHT_EYE_INNER, t.LEFT_EYE_OUTER,
               t.LEFT_EYE_INNER))


def lid_tightener(p: np.ndarray) -> np.ndarray:
  """Lower lids relative to the corner line (raised lids: less below)."""
  return (_y(p, t.RIGHT_LOWER_LID, t.LEFT_LOWER_LID)
          - _y(p, t.RIGHT_EYE_OUTER, t.RIGHT_EYE_INNER, t.LEFT_EYE_OUTER,
               t.LEFT_EYE_INNER))


def nose_wrinkler(p: np.ndarray) -> np.ndarray:
  """The nostrils' wings relative to the inner eye corners (pulled up)."""
  return (_y(p, t.RIGHT_ALA, t.LEFT_ALA)
          - _y(p, t.RIGHT_EYE_INNER, t.LEFT_EYE_INNER))


def upper_lip_raiser(p: np.ndarray) -> np.ndarray:
  """The top of the upper lip relative to the base of the nose."""
  return _y(p, t.UPPER_LIP_TOP) - _y(p, t.SUBNASALE)


def lip_corner_puller(p: np.ndarray) -> np.ndarray:
  """The mouth corners relative to the base of the nose (pulled up)."""
  return (_y(p, t.RIGHT_MOUTH_CORNER, t.LEFT_MOUTH_CORNER)
          - _y(p, t.SUBNASALE))


def lip_corner_depressor(p: np.ndarray) -> np.ndarray:
  """The lower lip's sides above the mouth corners (corners turned down)."""
  return (_y(p, t.RIGHT_LOWER_LIP_SIDE, t.LEFT_LOWER_LIP_SIDE)
          - _y(p, t.RIGHT_MOUTH_CORNER, t.LEFT_MOUTH_CORNER))


def lip_stretcher(p: np.ndarray) -> np.ndarray:
  """The mouth's width, corner to corner."""
  return p[..., t.LEFT_MOUTH_CORNER, 0] - p[..., t.RIGHT_MOUTH_CORNER, 0]


def lips_part(p: np.ndarray) -> np.ndarray:
  """The gap between the inner lips."""
  return _y(p, t.UPPER_LIP_INNER) - _y(p, t.LOWER_LIP_INNER)


def jaw_drop(p: np.ndarray) -> np.ndarray:
  """The chin below the nose tip."""
  return _y(p, t.NOSE_TIP) - _y(p, t.CHIN)


@dataclasses.dataclass(frozen=True)
class Measure:
  """One action-unit proxy: its AU, what it measures and the face region
  whose points it reads (measures of one region may move together)."""

  au: str
  fn: Callable[[np.ndarray], np.ndarray]
  region: str


MEASURES: dict[str, Measure] = {
    "inner_brow_raise": Measure("AU1", inner_brow_raise, "brows"),
    "outer_brow_raise": Measure("AU2", outer_brow_raise, "brows"),
    "brow_lowerer": Measure("AU4", brow_lowerer, "brows"),
    "upper_lid_raiser": Measure("AU5", upper_lid_raiser, "lids"),
    "lid_tightener": Measure("AU7", lid_tightener, "lids"),
    "nose_wrinkler": Measure("AU9", nose_wrinkler, "nose"),
    "upper_lip_raiser": Measure("AU10", upper_lip_raiser, "upper lip"),
    "lip_corner_puller": Measure("AU12", lip_corner_puller, "mouth corners"),
    "lip_corner_depressor": Measure("AU15", lip_corner_depressor,
                                    "mouth corners"),
    "lip_stretcher": Measure("AU20", lip_stretcher, "mouth corners"),
    "lips_part": Measure("AU25", lips_part, "inner lips"),
    "jaw_drop": Measure("AU26", jaw_drop, "jaw"),
}


def action_units(points: np.ndarray) -> np.ndarray:
  """(..., 468, 2|3) image points -> (..., len(MEASURES)) in IOD units."""
  p = normalise(points)
  return np.stack([m.fn(p) for m in MEASURES.values()], axis=-1)


def procrustes(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
  """(..., 468, 2|3) points -> (..., 468, 2) by the similarity (shift,
  scale, rotation; no reflection) that brings them closest to
  ``reference`` (468, 2) in least squares; centred, unit norm."""
  def centred_unit(a):
    a = np.asarray(a, np.float64)[..., :2]
    a = a - a.mean(-2, keepdims=True)
    return a / np.linalg.norm(a, axis=(-2, -1), keepdims=True)

  x, r = centred_unit(points), centred_unit(reference)
  # The best 2-D rotation angle: atan2 of the summed cross and dot products.
  dot = (x * r).sum((-2, -1))
  cross = (x[..., 0] * r[..., 1] - x[..., 1] * r[..., 0]).sum(-1)
  angle = np.arctan2(cross, dot)[..., None]
  cos, sin = np.cos(angle), np.sin(angle)
  return np.stack([x[..., 0] * cos - x[..., 1] * sin,
                   x[..., 0] * sin + x[..., 1] * cos], axis=-1)


def mean_shape(points: np.ndarray, iterations: int = 5) -> np.ndarray:
  """Generalised Procrustes: the (468, 2) mean of (N, 468, 2|3) meshes
  aligned to it, starting from their eye-levelled mean."""
  reference = normalise(points).mean(0)
  for _ in range(iterations):
    reference = procrustes(points, reference).mean(0)
  return reference / np.linalg.norm(reference)


def mirror(points: np.ndarray, width: float = 0.0) -> np.ndarray:
  """(..., 468, 2|3) points of a face -> those of its left-right mirror image
  ``width`` pixels wide: x becomes ``width - x`` and each point trades
  places with its partner (``topology.MIRROR``), so the right eye's points
  are again the right eye's. The measures and the descriptor do not depend
  on ``width`` (they remove the position)."""
  p = np.asarray(points)[..., t.MIRROR, :].copy()
  p[..., 0] = width - p[..., 0]
  return p


DESCRIPTOR_SIZE = len(MEASURES) + 2 * 468


def descriptor(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
  """The geometric feature vector: the action-unit measures, then the
  Procrustes-aligned x, y of every point; (..., 12 + 936) float32."""
  aligned = procrustes(points, reference)
  flat = aligned.reshape(*aligned.shape[:-2], -1)
  return np.concatenate([action_units(points), flat], -1).astype(np.float32)
