"""``ferjax.recognize``: any image in, its faces and expressions out.

A path, a PIL image or a numpy array; the array's colour order is stated,
never guessed (cv2 gives BGR, most other libraries RGB, and a swapped order
still classifies, only worse), and float pixels are taken in [0, 1]. What
the pipeline itself wants (``pipeline.recognize``) is uint8 RGB.
"""

import functools
import os
from typing import Any

import numpy as np

from ferjax.recognition.classifier import FaceClassifier, load_classifier
from ferjax.recognition import pipeline
from ferjax.recognition.pipeline import Detector, FaceResult

COLOR_ORDERS = ("rgb", "bgr")


@functools.cache
def default_classifier() -> FaceClassifier:
  """The bundled model, loaded once per process."""
  return load_classifier()


def _from_path(path: str | os.PathLike) -> np.ndarray:
  from ferjax.recognition.predict import load_image
  if not os.path.isfile(path):
    what = "a directory" if os.path.isdir(path) else "no such file"
    raise FileNotFoundError(
        f"image {str(path)!r}: {what}; a string or path must name an image "
        "file (JPEG, PNG, BMP, GIF, TIFF or WebP)")
  return load_image(path)


def _from_pil(image: Any, color_order: str | None) -> np.ndarray:
  if color_order not in (None, "rgb"):
    raise ValueError(f"color_order={color_order!r}: a PIL image is RGB; "
                     "leave color_order out")
  return np.asarray(image.convert("RGB"))


def _is_pil(image: Any) -> bool:
  module = type(image).__module__ or ""
  return module.startswith("PIL.") and hasattr(image, "convert")


def _to_uint8(array: np.ndarray) -> np.ndarray:
  """uint8 from uint8, uint16 (its high byte) or float in [0, 1]."""
  if array.dtype == np.uint8:
    return array
  if array.dtype == np.uint16:
    return (array >> 8).astype(np.uint8)
  if np.issubdtype(array.dtype, np.floating):
    finite = np.isfinite(array).all()
    if array.size and not (finite and array.min() >= 0
                           and array.max() <= 1):
      found = (f"values from {np.nanmin(array):g} to {np.nanmax(array):g}"
               if finite else "NaN or infinite values")
      raise ValueError(f"image: float pixels must be in [0, 1], got {found}; "
                       "for 0-255 values pass a uint8 array")
    return np.rint(array * 255.0).astype(np.uint8)
  raise ValueError(f"image: expected uint8, uint16 or float pixels in "
                   f"[0, 1], got dtype {array.dtype}")


def _from_array(array: np.ndarray, color_order: str | None) -> np.ndarray:
  if array.ndim not in (2, 3):
    raise ValueError(f"image: expected an (H, W) or (H, W, C) array, got "
                     f"shape {array.shape}")
  colour = array.ndim == 3 and array.shape[2] in (3, 4)
  if color_order is not None and color_order not in COLOR_ORDERS:
    raise ValueError(f"color_order: expected 'rgb' or 'bgr', got "
                     f"{color_order!r}")
  if colour and color_order is None:
    raise ValueError(
        f"color_order: a colour array {array.shape} needs color_order='rgb' "
        "or 'bgr' (cv2.imread and video frames give 'bgr')")
  array = _to_uint8(array)
  if colour and color_order == "bgr":
    array = array[..., [2, 1, 0, *range(3, array.shape[2])]]
  return array


def to_rgb(image: Any, color_order: str | None = None) -> np.ndarray:
  """uint8 RGB (H, W, 3) of a path, a PIL image or an array.

  Arrays may be (H, W), (H, W, 1) grey, (H, W, 2) grey and alpha, or (H, W,
  3|4) colour (with ``color_order`` 'rgb' or 'bgr'); uint8, uint16 or float
  in [0, 1] (rounded to uint8).
  """
  if isinstance(image, (str, os.PathLike)):
    if color_order is not None:
      raise ValueError(f"color_order={color_order!r}: an image file has its "
                       "own; leave color_order out")
    return _from_path(image)
  if _is_pil(image):
    return _from_pil(image, color_order)
  if isinstance(image, np.ndarray):
    return pipeline.as_rgb(_from_array(image, color_order))
  raise TypeError(f"image: expected a file path, a PIL image or a numpy "
                  f"array, got {type(image).__name__}")


def recognize(image: Any, classifier: FaceClassifier | None = None, *,
              color_order: str | None = None,
              detector: str | Detector = "auto",
              margin: float = 0.1) -> list[FaceResult]:
  """The faces of ``image`` with their expressions (see ``to_rgb`` for the
  images taken); ``classifier``: the bundled model unless given."""
  rgb = to_rgb(image, color_order)
  return pipeline.recognize(rgb, classifier or default_classifier(),
                            detector, margin=margin)
