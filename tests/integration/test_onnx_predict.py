"""examples/onnx_predict.py: an ONNX export and its ``ferjax.recipe``
metadata give ``ferjax predict``'s calibrated scores without ferjax."""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ferjax import pretrained
from ferjax.data.synthetic_fer import render_face
from ferjax.export import portable
from ferjax.recognition.align import Face
from ferjax.recognition.classifier import load_classifier
from ferjax.run.model import load_model
from ferjax.run.run_dir import RunDir
from helpers import PHOTOS, REPO, ferjax_cli

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="needs the onnx extra: pip install -e '.[onnx]'")

SCRIPT = REPO / "examples" / "onnx_predict.py"
SHARED_PHOTOS = pathlib.Path(os.environ.get("PHOTOS_DIR") or PHOTOS)
# ferjax predict rounds its scores to 4 decimals.
TOLERANCE = 1e-4
TEMPERATURE = 1.7

# Runs the script and checks that it never imported ferjax.
_RUN = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
assert not [m for m in sys.modules if m.split(".")[0] in ("ferjax", "jax")]
"""


def _script(*args: str) -> list[dict]:
  proc = subprocess.run([sys.executable, "-c", _RUN, str(SCRIPT), *args],
                        capture_output=True, text=True, check=False,
                        env={**os.environ, "PYTHONPATH": ""})
  assert proc.returncode == 0, proc.stderr
  return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory) -> pathlib.Path:
  """The bundled LeNet-5 (grey tiled to 3 channels, the rule a colour-
  blind reader gets wrong) with a stored temperature, as `ferjax
  calibrate` leaves it."""
  run = tmp_path_factory.mktemp("calibrated") / "run"
  shutil.copytree(pretrained.FER2013_LENET5, run)
  RunDir(run).write_calibration({"temperature": TEMPERATURE,
                                 "step": load_model(run).step})
  return run


def _photo(path: pathlib.Path) -> tuple[tuple[float, ...], dict]:
  """A drawn face, tilted and tinted, in a larger colour image; its box and
  eyes."""
  rng = np.random.default_rng(1)
  face = cv2.resize(render_face(rng, 3), (150, 150),
                    interpolation=cv2.INTER_CUBIC)
  image = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
  image = cv2.GaussianBlur(image, (9, 9), 3)
  image[45:195, 90:240] = np.stack([face, face * 0.8, face * 0.6],
                                   axis=-1).astype(np.uint8)
  assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  box = (97.3, 51.6, 137.1, 141.8)
  eyes = {"left_eye": (131.2, 101.7), "right_eye": (201.9, 109.4)}
  return box, eyes


@pytest.mark.parametrize("in_graph", [False, True])
def test_the_script_gives_the_classifier_s_calibrated_scores(
    calibrated_run, tmp_path, in_graph):
  model = portable.write_onnx(calibrated_run, tmp_path / "m.onnx",
                              preprocess_in_graph=in_graph)
  box, eyes = _photo(tmp_path / "photo.png")
  from ferjax.recognition.predict import load_image  # pylint: disable=g-import-not-at-top
  image = load_image(tmp_path / "photo.png")
  classifier = load_classifier(calibrated_run)
  want = classifier.score_faces(image, [Face(box, None, eyes)]).probs[0]
  raw = load_classifier(pretrained.FER2013_LENET5).score_faces(
      image, [Face(box, None, eyes)]).probs[0]
  assert np.abs(want - raw).max() > 1e-3  # The temperature matters here.
  (record,) = _script(str(model), "--image", str(tmp_path / "photo.png"),
                      "--box", *map(str, box), "--eyes",
                      *map(str, (*eyes["left_eye"], *eyes["right_eye"])))
  (face,) = record["faces"]
  got = np.asarray(list(face["scores"].values()))
  assert list(face["scores"]) == list(classifier.class_names)
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_recipe_is_structured_and_names_no_local_path(calibrated_run,
                                                          tmp_path):
  import onnx  # pylint: disable=g-import-not-at-top
  model = portable.write_onnx(calibrated_run, tmp_path / "m.onnx")
  meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
  recipe = json.loads(meta["ferjax.recipe"])
  assert recipe["output"]["temperature"] == TEMPERATURE
  assert recipe["crop"]["shape"] == [48, 48, 1]
  assert recipe["crop"]["margin"] == 0.1
  assert recipe["model_input"]["channels"] == {
      "from": 1, "to": 3, "rule": "tile", "rules": recipe["model_input"][
          "channels"]["rules"]}
  assert recipe["model_input"]["resize"]["to"] == [32, 32]
  assert json.loads(meta["temperature"]) == TEMPERATURE
  assert meta["ferjax.run"] == "run"
  assert not [v for v in meta.values() if str(tmp_path) in v]

  sidecar = portable.write_stablehlo(None, tmp_path / "m.stablehlo")
  meta = json.loads(portable.stablehlo_metadata_path(sidecar).read_text())
  default = load_model(pretrained.path())
  assert meta["recipe"]["model_input"]["shape"] == [
      "batch", *default.config.input.image_size, default.config.input.channels]
  assert meta["recipe"]["output"]["temperature"] == default.temperature
  assert meta["provenance"]["run"] == f"pretrained:{pretrained.DEFAULT}"
  assert isinstance(meta["provenance"]["checkpoint_step"], int)


@pytest.mark.slow  # 24 s; the calibrated-scores test runs the script always.
@pytest.mark.skipif(not (SHARED_PHOTOS / "faces").is_dir(),
                    reason=f"{SHARED_PHOTOS} absent (PHOTOS_DIR)")
def test_the_script_reproduces_predict_on_the_shared_photos(tmp_path):
  model = portable.write_onnx(None, tmp_path / "m.onnx")
  proc = ferjax_cli("predict", str(SHARED_PHOTOS / "faces"))
  assert proc.returncode == 0, proc.stderr
  predictions = tmp_path / "predictions.jsonl"
  predictions.write_text(proc.stdout)
  want = [json.loads(line) for line in proc.stdout.splitlines()]
  got = _script(str(model), "--predictions", str(predictions))
  assert [r["path"] for r in got] == [r["path"] for r in want]
  assert sum(len(r["faces"]) for r in got) >= len(got) > 0
  for mine, theirs in zip(got, want):
    for a, b in zip(mine["faces"], theirs["faces"], strict=True):
      assert a["label"] == b["label"], mine["path"]
      assert a["max_abs_diff"] <= TOLERANCE, (mine["path"], a)


def test_stablehlo_with_the_preprocessing_in_graph(calibrated_run, tmp_path):
  """uint8 crops in, the classifier's calibrated probabilities out."""
  import jax  # pylint: disable=g-import-not-at-top
  out = portable.write_stablehlo(calibrated_run, tmp_path / "m.stablehlo",
                                 preprocess_in_graph=True)
  exported = jax.export.deserialize(bytearray(out.read_bytes()))
  crops = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1),
                                            dtype=np.uint8)
  np.testing.assert_allclose(np.asarray(exported.call(crops)),
                             load_classifier(calibrated_run).predict(crops),
                             atol=1e-6)
  meta = json.loads(portable.stablehlo_metadata_path(out).read_text())
  assert meta["recipe"]["graph"]["input"].startswith("uint8 crops")
