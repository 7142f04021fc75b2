"""FACS-like measures: each moves when only its part of the face moves,
the others (outside its region) do not, and head roll and scale do not
change them; the Procrustes descriptor is invariant to similarity."""

import math

import numpy as np
import pytest

from ferjax.data import synthetic_fer
from ferjax.landmarks import action_units as au
from ferjax.landmarks import crop as crop_lib
from ferjax.landmarks import facemesh

RIGHT_INNER_BROW = (107, 66, 55, 65)
LEFT_INNER_BROW = (336, 296, 285, 295)
# Per measure: which points move, and by how much (x, y) in inter-ocular
# units with y up; right-side points take the mirrored x.
MOVES = {
    "inner_brow_raise": (RIGHT_INNER_BROW + LEFT_INNER_BROW, (0.0, 0.1)),
    "outer_brow_raise": ((70, 63, 46, 53, 300, 293, 276, 283), (0.0, 0.1)),
    "brow_lowerer": (RIGHT_INNER_BROW + LEFT_INNER_BROW, (-0.06, 0.0)),
    "upper_lid_raiser": ((159, 158, 160, 386, 385, 387), (0.0, 0.05)),
    "lid_tightener": ((145, 144, 153, 374, 373, 380), (0.0, 0.05)),
    "nose_wrinkler": ((48, 64, 98, 115, 278, 294, 327, 344), (0.0, 0.06)),
    "upper_lip_raiser": ((0, 37, 267, 39, 269, 40, 270), (0.0, 0.06)),
    "lip_corner_puller": ((61, 291), (0.0, 0.08)),
    "lip_corner_depressor": ((61, 291), (0.0, -0.08)),
    "lip_stretcher": ((61, 291), (0.1, 0.0)),
    "lips_part": ((14, 87, 317, 178, 402), (0.0, -0.1)),
    "jaw_drop": ((152, 148, 377, 176, 400), (0.0, -0.15)),
}


@pytest.fixture(scope="module")
def mesh() -> np.ndarray:
  """FaceMesh's points on a generated happy face, crop pixels."""
  grey = synthetic_fer.render_face(np.random.default_rng(0), 3)
  rgb = np.repeat(grey[..., None], 3, axis=2)
  crop = crop_lib.warp(rgb, crop_lib.crop_matrix((8.0, 8.0, 32.0, 32.0)))
  points, _ = facemesh.run(facemesh.load_variables(), crop[None])
  return points[0].astype(np.float64)


def moved(points: np.ndarray, indices, shift) -> np.ndarray:
  """``points`` with ``indices`` shifted in the face's normalised frame."""
  normal = au.normalise(points)
  out = points[:, :2].copy()
  iod = np.linalg.norm(points[[263, 362], :2].mean(0)
                       - points[[33, 133], :2].mean(0))
  angle = crop_lib.roll(points[[33, 133], :2].mean(0),
                        points[[263, 362], :2].mean(0))
  for i in indices:
    dx = -shift[0] if normal[i, 0] < 0 else shift[0]  # Mirrored on the right.
    # Normalised (x, y up) -> image (x, y down), rotated by the roll.
    ix, iy = dx * iod, -shift[1] * iod
    out[i] += (ix * math.cos(angle) - iy * math.sin(angle),
               ix * math.sin(angle) + iy * math.cos(angle))
  return out


def similar(points: np.ndarray, degrees: float, scale: float,
            shift) -> np.ndarray:
  a = math.radians(degrees)
  rotation = np.array([[math.cos(a), -math.sin(a)],
                       [math.sin(a), math.cos(a)]])
  return points[:, :2] @ rotation.T * scale + shift


def test_there_are_twelve_documented_measures():
  assert len(au.MEASURES) >= 12
  assert {m.au for m in au.MEASURES.values()} >= {
      "AU1", "AU2", "AU4", "AU5", "AU7", "AU9", "AU10", "AU12", "AU15",
      "AU20", "AU25", "AU26"}
  assert all(m.fn.__doc__ for m in au.MEASURES.values())


def test_measures_ignore_head_roll_scale_and_position(mesh):
  plain = au.action_units(mesh)
  for degrees in (-30.0, 12.0):
    np.testing.assert_allclose(
        au.action_units(similar(mesh, degrees, 2.7, (40.0, -15.0))), plain,
        atol=1e-9)


@pytest.mark.parametrize("name", sorted(MOVES))
def test_each_measure_moves_with_its_part_of_the_face_alone(mesh, name):
  names = list(au.MEASURES)
  indices, shift = MOVES[name]
  # On a rolled, scaled face: the move is made in the face's own frame.
  face = similar(mesh, 17.0, 1.6, (5.0, 9.0))
  before = au.action_units(face)
  after = au.action_units(moved(face, indices, shift))
  change = dict(zip(names, after - before))
  assert change[name] > 0.04, change
  region = au.MEASURES[name].region
  others = {k: v for k, v in change.items()
            if au.MEASURES[k].region != region}
  assert max(abs(v) for v in others.values()) < 1e-9, others


def test_procrustes_removes_similarity_and_keeps_shape(mesh):
  reference = au.mean_shape(np.stack([mesh[:, :2],
                                      similar(mesh, 5.0, 1.1, (0, 0))]))
  plain = au.procrustes(mesh, reference)
  turned = au.procrustes(similar(mesh, -25.0, 0.3, (7.0, 3.0)), reference)
  np.testing.assert_allclose(turned, plain, atol=1e-9)
  assert np.linalg.norm(plain) == pytest.approx(1.0)
  smile = moved(mesh, (61, 291), (0.0, 0.1))
  assert np.abs(au.procrustes(smile, reference) - plain).max() > 1e-3
  features = au.descriptor(np.stack([mesh[:, :2], smile]), reference)
  assert features.shape == (2, len(au.MEASURES) + 936)
  assert features.dtype == np.float32
