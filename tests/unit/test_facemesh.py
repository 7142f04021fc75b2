"""FaceMesh in Flax against MediaPipe's TFLite interpreter, and its weights.

The interpreter (``ai-edge-litert``, extra ``landmarks-parity``) and the
``.tflite`` file are not installed by default: the parity tests run when
``FERJAX_FACEMESH_TFLITE`` names the file (or the mediapipe 0.10.21 wheel
holding it). Without them, ``facemesh_golden.json`` (points the interpreter
computed on the generated faces below) checks the numbers.
Regenerate it: FERJAX_FACEMESH_TFLITE=... python tests/unit/test_facemesh.py
"""

import json
import math
import os
import pathlib
import zipfile

import cv2
import numpy as np
import pytest

from ferjax.convert import facemesh_tflite
from ferjax.data import synthetic_fer
from ferjax.landmarks import crop as crop_lib
from ferjax.landmarks import facemesh

GOLDEN = pathlib.Path(__file__).parents[1] / "data" / "facemesh_golden.json"
SHARED = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
# Nose tip, eye corners, mouth corners, lips, forehead, chin, last point.
GOLDEN_POINTS = (1, 33, 133, 263, 362, 61, 291, 13, 14, 10, 152, 467)
# The agreement asked of the port, in pixels of the 192x192 crop.
TOLERANCE_PX = 0.05


def generated_crops() -> np.ndarray:
  """Two FER2013-like faces (synthetic_fer, happy and surprise), upscaled
  from 48 pixels as FER2013 faces are fed to FaceMesh."""
  faces = [synthetic_fer.render_face(np.random.default_rng(seed), label)
           for seed, label in ((0, 3), (1, 5))]
  return np.stack([fer_crop(f) for f in faces])


def fer_crop(grey48: np.ndarray) -> np.ndarray:
  """A 48x48 grey face as FaceMesh's input: the whole image is the crop."""
  rgb = np.repeat(np.asarray(grey48, np.uint8).reshape(48, 48, 1), 3, axis=2)
  matrix = crop_lib.crop_matrix((8.0, 8.0, 32.0, 32.0))  # 1.5x -> all 48.
  return crop_lib.warp(rgb, matrix)


def tflite_model() -> bytes:
  """The .tflite bytes named by FERJAX_FACEMESH_TFLITE, else skip."""
  source = os.environ.get("FERJAX_FACEMESH_TFLITE")
  if not source:
    pytest.skip("FERJAX_FACEMESH_TFLITE names no face_landmark.tflite")
  return facemesh_tflite.read_source(source)[0]


def interpreter_outputs(model: bytes, crops: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
  """MediaPipe's own numbers: the TFLite interpreter, one crop at a time."""
  litert = pytest.importorskip("ai_edge_litert.interpreter")
  interpreter = litert.Interpreter(model_content=model)
  interpreter.allocate_tensors()
  (source,) = interpreter.get_input_details()
  outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
  points, scores = [], []
  for crop in crops:
    interpreter.set_tensor(source["index"], crop[None].astype(np.float32))
    interpreter.invoke()
    points.append(interpreter.get_tensor(outputs["conv2d_21"]).reshape(468, 3))
    logit = float(interpreter.get_tensor(outputs["conv2d_31"]).ravel()[0])
    scores.append(1.0 / (1.0 + math.exp(-logit)))
  return np.stack(points), np.array(scores)


@pytest.fixture(scope="module")
def variables():
  return facemesh.load_variables()


def test_the_shipped_weights_are_float16_and_fit_the_module(variables):
  with np.load(facemesh.WEIGHTS) as stored:
    assert {stored[k].dtype for k in stored.files} == {np.dtype(np.float16)}
    assert sum(stored[k].size for k in stored.files) == 604_685
  points, scores = facemesh.run(variables, generated_crops())
  assert points.shape == (2, 468, 3) and scores.shape == (2,)
  assert facemesh.PROVENANCE.is_file() and facemesh.LICENSE.is_file()
  assert "Apache License" in facemesh.LICENSE.read_text()


def test_the_module_matches_the_interpreters_stored_points(variables):
  golden = json.loads(GOLDEN.read_text())
  points, scores = facemesh.run(variables, generated_crops())
  expected = np.array(golden["points"])  # (2, len(GOLDEN_POINTS), 3)
  assert golden["indices"] == list(GOLDEN_POINTS)
  error = np.abs(points[:, GOLDEN_POINTS, :2] - expected[..., :2]).max()
  assert error < TOLERANCE_PX, error
  np.testing.assert_allclose(points[:, GOLDEN_POINTS, 2], expected[..., 2],
                             atol=TOLERANCE_PX)
  np.testing.assert_allclose(scores, golden["scores"], atol=1e-4)


def test_a_file_that_is_not_the_model_is_refused(tmp_path):
  other = tmp_path / "mediapipe-0.10.22-cp311-none.whl"
  with zipfile.ZipFile(other, "w") as wheel:
    wheel.writestr("mediapipe/__init__.py", "")
  with pytest.raises(ValueError, match="holds no mediapipe/modules"):
    facemesh_tflite.read_source(other)
  with pytest.raises(FileNotFoundError, match="no such file"):
    facemesh_tflite.read_source(tmp_path / "missing.tflite")
  pytest.importorskip("tflite")
  with pytest.raises(ValueError, match="not a TFLite model|operators"):
    facemesh_tflite.read_weights(b"\0" * 64)


def test_a_wrong_weights_file_is_named(tmp_path):
  bad = tmp_path / "face_landmark.npz"
  np.savez(bad, **{"conv2d_1/kernel": np.zeros((3, 3, 3, 8), np.float16)})
  with pytest.raises(ValueError, match="face_landmark.npz.*do not match"):
    facemesh.load_variables(bad)


def test_conversion_reproduces_the_shipped_weights(tmp_path):
  pytest.importorskip("tflite")
  model = tflite_model()
  params = facemesh_tflite.to_params(facemesh_tflite.read_weights(model))
  with np.load(facemesh.WEIGHTS) as stored:
    assert sorted(stored.files) == sorted(params)
    for key, value in params.items():
      np.testing.assert_array_equal(stored[key], value)


def test_the_module_agrees_with_the_interpreter_on_generated_faces(variables):
  crops = generated_crops()
  expected, expected_scores = interpreter_outputs(tflite_model(), crops)
  points, scores = facemesh.run(variables, crops)
  assert np.abs(points - expected).max() < TOLERANCE_PX
  np.testing.assert_allclose(scores, expected_scores, atol=1e-4)


def real_crops() -> np.ndarray:
  """FaceMesh crops of the shared photos' faces (MTCNN boxes and eyes) and
  of 20 FER2013 PublicTest faces (3 per class, first by name)."""
  from ferjax.recognition import pipeline  # pylint: disable=g-import-not-at-top
  photos = sorted((SHARED / "photos" / "faces").glob("*"))
  fer = SHARED / "fer2013" / "test"
  if not photos or not fer.is_dir():
    pytest.skip(f"{SHARED}: no shared photos or FER2013 test images")
  crops = []
  detector = pipeline.get_detector("auto")
  for path in photos:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    for face in detector.detect(image):
      eyes = face.landmarks or {}
      angle = crop_lib.roll(eyes.get("left_eye"), eyes.get("right_eye"))
      crops.append(crop_lib.warp(image, crop_lib.crop_matrix(face.box, angle)))
  names = [p for c in sorted(fer.iterdir()) for p in sorted(c.glob("*"))[:3]]
  for path in names[:20]:
    crops.append(fer_crop(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)))
  return np.stack(crops)


def test_the_module_agrees_with_the_interpreter_on_real_faces(variables):
  model = tflite_model()
  crops = real_crops()
  expected, expected_scores = interpreter_outputs(model, crops)
  points, scores = facemesh.run(variables, crops)
  error = np.abs(points[..., :2] - expected[..., :2]).max()
  print(f"{len(crops)} faces: max point error {error:.5f} px, max score "
        f"error {np.abs(scores - expected_scores).max():.2e}")
  assert error < TOLERANCE_PX
  np.testing.assert_allclose(scores, expected_scores, atol=1e-3)


if __name__ == "__main__":
  golden_points, golden_scores = interpreter_outputs(
      facemesh_tflite.read_source(os.environ["FERJAX_FACEMESH_TFLITE"])[0],
      generated_crops())
  GOLDEN.write_text(json.dumps({
      "indices": list(GOLDEN_POINTS),
      "points": [[[round(float(v), 4) for v in p] for p in face]
                 for face in golden_points[:, GOLDEN_POINTS]],
      "scores": [round(float(s), 6) for s in golden_scores]}) + "\n")
