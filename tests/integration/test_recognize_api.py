"""ferjax.recognize: one call from a path, a PIL image or an array (colour
order stated, uint8 or float in [0, 1]) to faces; clear errors otherwise."""

import dataclasses
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

import ferjax
from ferjax.recognition.classifier import load_classifier
from helpers import DarkSquares

# The detector finds dark squares in channel 0 (red, in RGB).
DETECTOR = DarkSquares()


def _rgb() -> np.ndarray:
  """A light image with one square dark in red, light in blue: in the
  wrong colour order no face is found."""
  rng = np.random.default_rng(0)
  image = rng.integers(150, 256, (120, 160, 3), dtype=np.uint8)
  image[30:90, 50:110, 0] = rng.integers(0, 40, (60, 60), dtype=np.uint8)
  image[30:90, 50:110, 2] = 230
  return image


def _recognize(image, **kwargs):
  return ferjax.recognize(image, detector=DETECTOR, **kwargs)


@pytest.fixture(scope="module")
def want():
  """The faces of the RGB array with the bundled model."""
  faces = _recognize(_rgb(), color_order="rgb")
  assert len(faces) == 1 and faces[0].box == (50.0, 30.0, 60.0, 60.0)
  return faces


def _same(got, want):
  assert [(f.box, f.label, f.scores) for f in got] == [
      (f.box, f.label, f.scores) for f in want]


def test_import_ferjax_loads_no_jax():
  code = ("import sys, ferjax; assert callable(ferjax.recognize); "
          "assert 'jax' not in sys.modules and 'cv2' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_an_rgb_array_uses_the_bundled_model(want):
  (face,) = want
  assert face.label in face.scores and len(face.scores) == 7
  assert abs(sum(face.scores.values()) - 1) < 1e-5


def test_a_bgr_array_is_turned_round(want):
  bgr = np.ascontiguousarray(_rgb()[..., ::-1])
  _same(_recognize(bgr, color_order="bgr"), want)
  assert _recognize(bgr, color_order="rgb") == []  # Order matters here.


def test_a_float_array_in_unit_range(want):
  _same(_recognize(_rgb() / 255.0, color_order="rgb"), want)
  _same(_recognize((_rgb() / 255.0).astype(np.float32), color_order="rgb"),
        want)


def test_a_path_string_and_a_path(want, tmp_path):
  path = tmp_path / "photo.png"
  assert cv2.imwrite(str(path), cv2.cvtColor(_rgb(), cv2.COLOR_RGB2BGR))
  _same(_recognize(str(path)), want)
  _same(_recognize(pathlib.Path(path)), want)


def test_a_pil_image(want):
  _same(_recognize(Image.fromarray(_rgb())), want)
  _same(_recognize(Image.fromarray(_rgb()).convert("RGBA")), want)


def test_a_grey_array_and_a_given_classifier():
  # The bundled model under other label names: the classifier given is used.
  renamed = dataclasses.replace(
      load_classifier(), class_names=tuple(f"c{i}" for i in range(7)))
  (face,) = ferjax.recognize(_rgb()[..., 0], renamed, detector=DETECTOR)
  assert face.box == (50.0, 30.0, 60.0, 60.0)
  assert tuple(face.scores) == renamed.class_names


@pytest.mark.parametrize("image, kwargs, error, message", [
    ("no_such_photo.jpg", {}, FileNotFoundError,
     "image 'no_such_photo.jpg': no such file; a string or path must name"),
    (np.zeros((2, 8, 8, 3), np.uint8), {"color_order": "rgb"}, ValueError,
     "expected an (H, W) or (H, W, C) array, got shape (2, 8, 8, 3)"),
    (np.full((8, 8, 3), 1.5), {"color_order": "rgb"}, ValueError,
     "float pixels must be in [0, 1], got values from 1.5 to 1.5"),
    (np.full((8, 8), np.nan), {}, ValueError,
     "float pixels must be in [0, 1], got NaN or infinite values"),
    (np.zeros((8, 8, 3), np.int64), {"color_order": "rgb"}, ValueError,
     "expected uint8, uint16 or float pixels in [0, 1], got dtype int64"),
    (np.zeros((8, 8, 3), np.uint8), {}, ValueError,
     "needs color_order='rgb' or 'bgr'"),
    (np.zeros((8, 8, 3), np.uint8), {"color_order": "RGBA"}, ValueError,
     "color_order: expected 'rgb' or 'bgr', got 'RGBA'"),
    ([[0, 1], [2, 3]], {}, TypeError,
     "expected a file path, a PIL image or a numpy array, got list"),
    (Image.new("RGB", (8, 8)), {"color_order": "bgr"}, ValueError,
     "a PIL image is RGB"),
])
def test_bad_images_are_named(image, kwargs, error, message):
  with pytest.raises(error) as caught:
    _recognize(image, **kwargs)
  assert message in str(caught.value)


def test_a_directory_is_not_an_image(tmp_path):
  with pytest.raises(FileNotFoundError, match="a directory; a string"):
    _recognize(str(tmp_path))
