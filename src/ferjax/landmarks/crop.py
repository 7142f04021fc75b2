"""FaceMesh's input crop: a face's box and eyes -> an upright 192x192 patch.

As MediaPipe's face landmark graph makes it: a square centred on the
detector's box, its longer side plus ``MARGIN`` of it on every side (1.5x),
rotated so that the eye line is level; the mesh comes back through the same
map. Coordinates are continuous (a pixel's centre at +0.5); the matrices
handed to OpenCV are shifted to its pixel-centre convention.
"""

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ferjax.landmarks import facemesh

MARGIN = 0.25
# An eye line steeper than this is a wrong eye detection, not a rolled head
# (recognition.align uses the same bound): the crop stays unrotated.
MAX_ROLL_DEGREES = 45.0


def roll(left_eye: Sequence[float] | None,
         right_eye: Sequence[float] | None) -> float:
  """Radians of the eye line (image left to right eye, y down); 0 without
  eyes or for an implausibly steep line."""
  if left_eye is None or right_eye is None:
    return 0.0
  angle = math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
  return angle if abs(math.degrees(angle)) <= MAX_ROLL_DEGREES else 0.0


def crop_matrix(box: Sequence[float], angle: float = 0.0, *,
                margin: float = MARGIN,
                size: int = facemesh.INPUT_SIZE) -> np.ndarray:
  """The 2x3 affine map, continuous image coordinates -> the crop's, of the
  ``size`` square around ``box`` (x, y, w, h) rotated by ``angle``."""
  x, y, w, h = box
  side = max(w, h) * (1.0 + 2.0 * margin)
  if side <= 0:
    raise ValueError(f"face box must have a positive size, got {tuple(box)}")
  cx, cy = x + w / 2.0, y + h / 2.0
  scale = size / side
  cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
  # Rotate by -angle about the centre, scale, centre in the crop.
  linear = np.array([[cos, sin], [-sin, cos]])
  offset = np.array([size / 2.0, size / 2.0]) - linear @ np.array([cx, cy])
  return np.concatenate([linear, offset[:, None]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray,
         size: int = facemesh.INPUT_SIZE) -> np.ndarray:
  """The float32 RGB crop in [0, 1] of uint8 RGB ``image`` through
  ``matrix`` (from ``crop_matrix``); outside the image is black."""
  shift = np.array([0.5, 0.5])
  pixel = matrix.copy()  # Continuous -> pixel centres on both sides.
  pixel[:, 2] = matrix[:, :2] @ shift + matrix[:, 2] - shift
  crop = cv2.warpAffine(image, pixel, (size, size), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  return crop.astype(np.float32) / 255.0


def to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Crop points (..., 468, 3) back to image coordinates; z is scaled
  like x and y."""
  linear, offset = matrix[:, :2], matrix[:, 2]
  inverse = np.linalg.inv(linear)
  xy = (points[..., :2] - offset) @ inverse.T
  z = points[..., 2:] * math.sqrt(abs(np.linalg.det(inverse)))
  return np.concatenate([xy, z], axis=-1)
