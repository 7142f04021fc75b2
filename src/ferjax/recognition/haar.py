"""Viola-Jones face detection with OpenCV's Haar cascades.

Faces come from the frontal-face cascade; eyes, found by the eye cascade in
the upper half of each face, become the landmarks that level the face in
alignment. The cascades ship inside opencv-python (cv2.data.haarcascades),
so nothing is downloaded.
"""

from pathlib import Path

import cv2
import numpy as np

from ferjax.recognition.align import Face

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"


def load_cascade(name: str) -> cv2.CascadeClassifier:
  """One of OpenCV's bundled cascades, by file name."""
  directory = getattr(getattr(cv2, "data", None), "haarcascades", None)
  if directory is None:
    raise FileNotFoundError(
        f"{name}: this OpenCV build has no cv2.data.haarcascades; install "
        "opencv-python-headless>=4.10,<5")
  path = Path(directory) / name
  cascade = cv2.CascadeClassifier(str(path))
  if cascade.empty():
    raise FileNotFoundError(f"{path}: Haar cascade missing or unreadable")
  return cascade


def to_grey(image: np.ndarray) -> np.ndarray:
  """uint8 grey (H, W) of a uint8 RGB (H, W, 3) image."""
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image must be uint8 RGB of shape (H, W, 3), got "
                     f"{image.dtype} {image.shape}")
  return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


class HaarDetector:
  """OpenCV's frontal-face cascade plus an eye pass for alignment.

  ``scale_factor`` and ``min_neighbors`` are detectMultiScale's (OpenCV's
  defaults are 1.1 and 3; 5 rejects the small false faces that 3 finds in
  hair, beards and noses on the shared photos). Faces smaller than
  ``min_size_fraction`` of the image's shorter side are not searched for.
  """

  def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5,
               min_size_fraction: float = 0.05):
    self.scale_factor = scale_factor
    self.min_neighbors = min_neighbors
    self.min_size_fraction = min_size_fraction
    self._faces = load_cascade(FACE_CASCADE)
    self._eyes = load_cascade(EYE_CASCADE)

  def detect(self, image: np.ndarray) -> list[Face]:
    """Faces in a uint8 RGB (H, W, 3) image, largest first."""
    grey = to_grey(image)
    side = max(1, round(min(grey.shape) * self.min_size_fraction))
    boxes = self._faces.detectMultiScale(
        grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
        minSize=(side, side))
    boxes = sorted((tuple(int(v) for v in b) for b in boxes),
                   key=lambda b: -b[2] * b[3])
    return [Face(tuple(float(v) for v in b), None, self._find_eyes(grey, b))
            for b in boxes]

  def _find_eyes(self, grey: np.ndarray,
                 box: tuple[int, int, int, int]) -> dict | None:
    """Centres of the largest eye on each side of the face's upper half,
    or None unless both sides have one."""
    x, y, w, h = box
    upper = grey[y:y + h // 2, x:x + w]
    side = max(1, w // 10)
    found = self._eyes.detectMultiScale(upper, scaleFactor=1.1,
                                        minNeighbors=5, minSize=(side, side))
    centres = {"left_eye": None, "right_eye": None}
    best = {"left_eye": 0, "right_eye": 0}
    for ex, ey, ew, eh in found:
      cx, cy = x + ex + ew / 2.0, y + ey + eh / 2.0
      name = "left_eye" if cx < x + w / 2.0 else "right_eye"
      if ew * eh > best[name]:
        best[name], centres[name] = ew * eh, (float(cx), float(cy))
    if centres["left_eye"] is None or centres["right_eye"] is None:
      return None
    return centres
