"""Detected faces and their alignment into classifier crops.

Every detector returns ``Face`` records and every crop is made here, so the
classifier sees faces prepared the same way whichever detector found them:
eyes level, a square-ish region around the box, the training images' shape.
"""

import dataclasses
import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

# MTCNN's five landmarks. "left" and "right" are as seen in the image (the
# left eye has the smaller x), which is also how the Haar eyes are named.
LANDMARK_NAMES: tuple[str, ...] = (
    "left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

# Eye lines tilted more than this are taken as a wrong eye detection rather
# than a tilted head, and the face is cropped unrotated.
MAX_ROTATION_DEGREES = 45.0

# The fraction of the face's larger side added on every side of its crop.
MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class Face:
  """A face in image pixel coordinates.

  ``box`` is (x, y, width, height); ``score`` is the detector's confidence
  when it has one; ``landmarks`` maps names from ``LANDMARK_NAMES`` (at least
  both eyes) to (x, y), or is None when the detector gave none.
  """

  box: tuple[float, float, float, float]
  score: float | None = None
  landmarks: Mapping[str, tuple[float, float]] | None = None


def eye_angle(face: Face) -> float:
  """Degrees to rotate the image by (counter-clockwise) to level the eyes.

  0 when the face has no eyes or their line is implausibly steep.
  """
  if not face.landmarks or not {"left_eye", "right_eye"} <= set(face.landmarks):
    return 0.0
  (lx, ly), (rx, ry) = face.landmarks["left_eye"], face.landmarks["right_eye"]
  angle = math.degrees(math.atan2(ry - ly, rx - lx))
  return angle if abs(angle) <= MAX_ROTATION_DEGREES else 0.0


def crop_region(face: Face, crop_hw: Sequence[int],
                margin: float) -> tuple[float, float, float, float]:
  """Centre and size (cx, cy, width, height) of the region to crop.

  The region is centred on the box, covers its larger side plus ``margin`` of
  it on every side, and has the crop's aspect ratio so resizing never
  stretches the face.
  """
  x, y, w, h = face.box
  side = max(w, h) * (1.0 + 2.0 * margin)
  crop_h, crop_w = crop_hw
  return (x + w / 2.0, y + h / 2.0, side * max(1.0, crop_w / crop_h),
          side * max(1.0, crop_h / crop_w))


def _patch_matrix(face: Face, crop_hw: Sequence[int], margin: float
                  ) -> tuple[np.ndarray, tuple[int, int]]:
  """The affine map from the image to the face's upright patch at the
  source resolution, and the patch's (width, height)."""
  cx, cy, region_w, region_h = crop_region(face, crop_hw, margin)
  out_w, out_h = max(1, round(region_w)), max(1, round(region_h))
  # Rotate about the region's centre, then move that centre to the middle of
  # an out_w x out_h patch at the source resolution.
  matrix = cv2.getRotationMatrix2D((cx, cy), eye_angle(face), 1.0)
  matrix[:, 2] += (out_w / 2.0 - cx, out_h / 2.0 - cy)
  return matrix, (out_w, out_h)


def crop_to_image(values: np.ndarray, face: Face,
                  image_hw: Sequence[int], *, margin: float = MARGIN
                  ) -> np.ndarray:
  """A float map over ``face``'s crop (as ``align_face`` cuts it, any
  resolution) placed back over the image: (H, W), 0 outside the crop."""
  crop_h, crop_w = values.shape[:2]
  matrix, (out_w, out_h) = _patch_matrix(face, (crop_h, crop_w), margin)
  to_crop = np.diag([crop_w / out_w, crop_h / out_h]) @ matrix
  height, width = image_hw
  return cv2.warpAffine(np.asarray(values, np.float32), to_crop,
                        (width, height),
                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_face(image: np.ndarray, face: Face, crop_shape: Sequence[int], *,
               margin: float = MARGIN) -> np.ndarray:
  """The uint8 crop of ``face``, rotated upright and shaped ``crop_shape``.

  ``image`` is uint8 RGB (H, W, 3); ``crop_shape`` is (H, W, C) with C = 1
  (grey, as cv2 computes it) or 3 (RGB). Pixels outside the image repeat the
  border so a face at the edge still fills its crop.
  """
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(
        f"image must be uint8 RGB of shape (H, W, 3), got {image.dtype} "
        f"{image.shape}")
  crop_h, crop_w, channels = crop_shape
  if channels not in (1, 3):
    raise ValueError(f"crop_shape must have 1 or 3 channels, got {crop_shape}")
  matrix, (out_w, out_h) = _patch_matrix(face, (crop_h, crop_w), margin)
  patch = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
  crop = cv2.resize(patch, (crop_w, crop_h), interpolation=cv2.INTER_AREA)
  if channels == 1:
    crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None]
  return crop


def align_faces(image: np.ndarray, faces: Sequence[Face],
                crop_shape: Sequence[int], *,
                margin: float = MARGIN) -> np.ndarray:
  """Crops of all ``faces`` stacked as uint8 (N, *crop_shape)."""
  crops = [align_face(image, f, crop_shape, margin=margin) for f in faces]
  if not crops:
    return np.zeros((0, *crop_shape), np.uint8)
  return np.stack(crops)
