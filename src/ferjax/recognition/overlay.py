"""Saliency overlays: what each face's label rests on, drawn over the image.

Each face is aligned as for its scores, explained (``Classifier.explain``:
Grad-CAM of the label it was given) and its map put back over the image
(``align.crop_to_image``), so a rotated face gets a rotated map, clipped to
the face's box (the crop's margin and rotated corners are not the face).
"""

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ferjax.recognition.align import Face, align_faces, crop_to_image
from ferjax.recognition.classifier import Classifier
from ferjax.recognition.pipeline import FaceResult

# How much of the colour map a fully salient pixel shows.
OPACITY = 0.5


def face_heat(image: np.ndarray, results: Sequence[FaceResult],
              classifier: Classifier, *, margin: float = 0.1) -> np.ndarray:
  """(H, W) float32 in [0, 1]: each face's saliency map of its label over
  RGB ``image`` inside its box, the larger where faces overlap; 0 outside
  the boxes."""
  heat = np.zeros(image.shape[:2], np.float32)
  if not results:
    return heat
  faces = [Face(r.box, r.detection_score, r.landmarks) for r in results]
  crops = align_faces(image, faces, classifier.crop_shape, margin=margin)
  maps = classifier.explain(
      crops, [classifier.class_names.index(r.label) for r in results])
  for face, values in zip(faces, maps, strict=True):
    placed = crop_to_image(values, face, image.shape[:2], margin=margin)
    heat = np.maximum(heat, placed * _box_mask(face.box, image.shape[:2]))
  return heat


def _box_mask(box: Sequence[float], image_hw: Sequence[int]) -> np.ndarray:
  """1 on the pixels the box (x, y, w, h) touches, 0 elsewhere: a map stays
  on its face, not on the margin and rotated corners of its crop."""
  x, y, w, h = box
  height, width = image_hw
  mask = np.zeros((height, width), np.float32)
  mask[max(0, math.floor(y)):min(height, math.ceil(y + h)),
       max(0, math.floor(x)):min(width, math.ceil(x + w))] = 1
  return mask


def blend(bgr: np.ndarray, heat: np.ndarray,
          opacity: float = OPACITY) -> np.ndarray:
  """A copy of BGR ``bgr`` with ``heat`` (H, W in [0, 1]) as a jet colour
  map, opaque in proportion to the heat: cold pixels stay as they were."""
  colours = cv2.applyColorMap(
      np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
  alpha = (opacity * np.clip(heat, 0, 1))[..., None]
  return np.round(bgr * (1 - alpha) + colours * alpha).astype(np.uint8)
