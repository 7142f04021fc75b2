"""ONNX and StableHLO export: ONNX Runtime and a bare jax.export give
ferjax's logits, for every model family, on real and generated faces."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax import config as config_lib
from ferjax.export import jaxpr_onnx
from ferjax import pretrained
from ferjax.data import preprocess
from ferjax.data.synthetic_fer import render_face
from ferjax.labels import FER2013_CLASSES
from ferjax.models import MODEL_NAMES, create_model
from ferjax.run.model import load_model
from helpers import PHOTOS, SHARED_FER2013, ferjax_cli

# CI installs the extra (tests/unit/test_ci.py); elsewhere these
# skip without it.
pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="needs the onnx extra: pip install -e '.[onnx]'")

# The shared FER2013 beside the repository, or where FER2013_DIR says.
FER2013 = pathlib.Path(os.environ.get("FER2013_DIR") or SHARED_FER2013)
SHARED_PHOTOS = pathlib.Path(os.environ.get("PHOTOS_DIR") or PHOTOS)
TOLERANCE = 1e-4  # Max abs logit difference, ONNX Runtime vs XLA.
_slow = pytest.mark.slow
# Input (H, W, C) per family: FER2013's own size; torchvision's networks
# keep their geometry (AlexNet needs 63x63).
_SHAPES = {"lenet5": (32, 32, 3), "alexnet_tv": (64, 64, 3),
           "googlenet_tv": (64, 64, 3)}
# Over 20 s each here (2 shared cores): the default run keeps one of each
# family (lenet5, alexnet_bn, vgg11_bn, googlenet_bn, lbp_linear, fusion).
_SLOW = {"alexnet", "googlenet", "googlenet_tv", "alexnet_tv",
         "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
         "vgg11", "resnet_fer", "resnet_fer_small"}


def _generated_faces(n: int = 3) -> np.ndarray:
  rng = np.random.default_rng(0)
  return np.stack([render_face(rng, i % 7) for i in range(n)])[..., None]


def _fer2013_faces(n: int = 3) -> np.ndarray:
  import cv2  # pylint: disable=g-import-not-at-top
  folders = sorted((FER2013 / "test").iterdir())[:n]
  return np.stack([cv2.imread(str(sorted(f.iterdir())[0]),
                              cv2.IMREAD_GRAYSCALE) for f in folders])[..., None]


def _faces() -> np.ndarray:
  """Generated faces, and real ones from FER2013 where it is present: the
  tests never only skip."""
  faces = _generated_faces()
  if FER2013.is_dir():
    faces = np.concatenate([faces, _fer2013_faces()])
  return faces


def _model_input(faces: np.ndarray, shape) -> np.ndarray:
  return np.asarray(preprocess.to_model_input(
      preprocess.to_unit_float(jnp.asarray(faces)), image_size=shape[:2],
      channels=shape[2], mean=[0.5], std=[0.25]))


def _random_variables(model, shape):
  """Random variables of the model's shapes, drawn in NumPy (``model.init``
  compiles for tens of seconds for GoogLeNet); BatchNorm statistics and
  scales away from 0 and 1, so that inference-mode normalisation counts."""
  abstract = jax.eval_shape(model.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, *shape), jnp.float32))
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name, size = path[-1].key, leaf.shape
    if name == "kernel":
      fan_in = int(np.prod(size[:-1]))
      value = rng.normal(0, 1 / np.sqrt(fan_in), size)
    elif name in ("scale", "var"):
      value = rng.uniform(0.5, 1.5, size)
    else:  # Biases, means.
      value = rng.normal(0, 0.1, size)
    return value.astype(leaf.dtype)
  return jax.tree_util.tree_map_with_path(draw, abstract)


def _ort_logits(model_proto, x: np.ndarray) -> np.ndarray:
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  session = ort.InferenceSession(model_proto.SerializeToString(),
                                 providers=["CPUExecutionProvider"])
  return session.run(None, {session.get_inputs()[0].name: x})[0]


def _check_family(name: str, faces: np.ndarray, fusion=None) -> float:
  shape = _SHAPES.get(name, (48, 48, 1))
  model = create_model(name, num_classes=7, fusion=fusion)
  variables = _random_variables(model, shape)
  fn = lambda x: model.apply(variables, x, train=False)
  proto = jaxpr_onnx.to_onnx(fn, shape)
  x = _model_input(faces, shape)
  if name == "lbp_linear" or "lbp" in (fusion or {}).get("features", ()):
    # An LBP bit is a >= of float32 values that often tie: XLA's fused
    # program (FMAs) flips a few of them against JAX's own op-by-op run,
    # which ONNX Runtime reproduces exactly.
    with jax.disable_jit():
      want = np.asarray(fn(x))
  else:
    want = np.asarray(jax.jit(fn)(x))
  worst = 0.0
  for batch in (x, x[:1]):  # The batch dimension is open.
    got = _ort_logits(proto, batch)
    assert got.shape == (len(batch), 7)
    worst = max(worst, float(np.abs(got - want[:len(batch)]).max()))
  assert worst <= TOLERANCE, (name, worst)
  assert np.abs(want).max() > 10 * TOLERANCE  # Not all (near) zero.
  return worst


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=_slow) if n in _SLOW else n for n in MODEL_NAMES])
def test_onnx_runtime_gives_ferjax_logits(name):
  _check_family(name, _faces())


def _fusion(features: tuple[str, ...], mode: str) -> dict:
  return {**config_lib.base_config().model.fusion.to_dict(),
          "features": features, "mode": mode}


@pytest.mark.parametrize("mode", ["early", "late"])
def test_fusion_models_with_lbp_lower(mode):
  _check_family("lenet5", _generated_faces(), fusion=_fusion(("lbp",), mode))


def test_gabor_features_do_not_lower_and_the_error_says_why():
  model = create_model("lenet5", num_classes=7,
                       fusion=_fusion(("gabor",), "late"))
  variables = _random_variables(model, (32, 32, 3))
  with pytest.raises(jaxpr_onnx.NotLowerable, match="primitive 'fft'"):
    jaxpr_onnx.to_onnx(lambda x: model.apply(variables, x), (32, 32, 3))


def test_an_unlowerable_primitive_is_named():
  with pytest.raises(jaxpr_onnx.NotLowerable, match="'cumsum'"):
    jaxpr_onnx.to_onnx(lambda x: jnp.cumsum(x, axis=1), (5,))


def test_a_batch_dependent_value_is_refused():
  with pytest.raises(jaxpr_onnx.NotLowerable, match="batch size"):
    jaxpr_onnx.to_onnx(lambda x: x.mean(axis=0, keepdims=True) + x, (5,))


def _read_metadata(path: pathlib.Path) -> dict[str, str]:
  import onnx  # pylint: disable=g-import-not-at-top
  return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _bundled_inputs(name: str = pretrained.DEFAULT
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Preprocessed faces for a bundled model and ferjax's logits."""
  loaded = load_model(pretrained.path(name))
  cfg = loaded.config.input
  x = np.asarray(preprocess.to_model_input(
      preprocess.to_unit_float(jnp.asarray(_faces())),
      image_size=cfg.image_size, channels=cfg.channels, mean=cfg.mean,
      std=cfg.std))
  return x, np.asarray(loaded.model.apply(loaded.variables, x, train=False))


# Each bundled model: its input shape and how its grey crop becomes it.
_BUNDLED = {"fer2013_resnet": (["batch", 48, 48, 1], "keep"),
            "fer2013_lenet5": (["batch", 32, 32, 3], "tile")}


@pytest.mark.parametrize("name", _BUNDLED)
def test_export_of_a_bundled_model_runs_in_onnx_runtime(name, tmp_path):
  out = tmp_path / "models" / f"{name}.onnx"
  proc = ferjax_cli("export", "--format", "onnx", "--pretrained", name,
                    "--out", str(out))
  assert proc.returncode == 0, proc.stderr
  assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
  x, want = _bundled_inputs(name)
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
  got = session.run(["logits"], {"input": x})[0]
  assert float(np.abs(got - want).max()) <= TOLERANCE
  meta = _read_metadata(out)
  run = load_model(pretrained.path(name))
  shape, rule = _BUNDLED[name]
  assert json.loads(meta["class_names"]) == list(run.dataset["class_names"])
  assert json.loads(meta["input.shape"]) == shape
  assert meta["input.layout"] == "NHWC"
  assert json.loads(meta["input.mean"]) == list(run.config.input.mean)
  assert json.loads(meta["input.std"]) == list(run.config.input.std)
  assert meta["dataset"] == "fer2013"
  assert meta["ferjax.model"] == run.config.model.name
  assert meta["ferjax.checkpoint_step"] == str(run.step)
  assert len(meta["ferjax.config_sha256"]) == 64
  assert "resize" in meta["preprocessing"]
  recipe = json.loads(meta["ferjax.recipe"])
  assert recipe["model_input"]["channels"]["rule"] == rule
  assert recipe["output"]["labels"] == list(run.dataset["class_names"])
  assert meta["ferjax.run"] == f"pretrained:{name}"


# Runs where ferjax is not imported: the artifact carries its program.
_RELOAD = """
import sys, numpy as np, jax
exported = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(exported.call(x)))
assert "ferjax" not in sys.modules and "flax" not in sys.modules
"""


def test_stablehlo_export_reloads_without_ferjax(tmp_path):
  out = tmp_path / "default.stablehlo"
  proc = ferjax_cli("export", "--format", "stablehlo", "--workdir",
                    str(pretrained.path()), "--out", str(out))
  assert proc.returncode == 0, proc.stderr
  x, want = _bundled_inputs()
  np.save(tmp_path / "x.npy", x)
  subprocess.run([sys.executable, "-c", _RELOAD, str(out),
                  str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                 check=True, cwd=tmp_path)
  np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-5)
  meta = json.loads((tmp_path / "default.stablehlo.json").read_text())
  assert meta["recipe"]["model_input"]["shape"] == _BUNDLED[
      pretrained.DEFAULT][0]
  assert meta["provenance"]["run"] == f"pretrained:{pretrained.DEFAULT}"


def test_export_errors_are_one_line(tmp_path):
  (tmp_path / "a_file").write_text("")
  (tmp_path / "taken.onnx").write_bytes(b"keep")
  cases = [
      (["--format", "tflite", "--out", str(tmp_path / "m")],
       "--format: unknown format 'tflite'; expected one of run, onnx, "
       "stablehlo"),
      (["--format", "onnx", "--out", str(tmp_path / "a_file" / "m.onnx")],
       f"cannot write there ({tmp_path / 'a_file'}: is a file, expected a "
       "directory)"),
      (["--format", "onnx", "--out", str(tmp_path / "taken.onnx")],
       "taken.onnx: already exists; export never overwrites"),
  ]
  for args, message in cases:
    proc = ferjax_cli("export", "--pretrained", *args)
    assert proc.returncode == 2, args
    assert message in proc.stderr and "Traceback" not in proc.stderr, (
        proc.stderr)
  assert (tmp_path / "taken.onnx").read_bytes() == b"keep"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file",
                                                        "taken.onnx"]




def test_a_model_that_does_not_lower_fails_in_one_line(tmp_path):
  from ferjax.run.run_dir import write_imported  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  config.model.name = "lenet5"
  config.model.fusion = _fusion(("gabor",), "late")
  config.input.image_size, config.input.channels = (32, 32), 3
  config.input.mean, config.input.std = [0.5], [0.25]
  model = create_model("lenet5", num_classes=7, fusion=config.model.fusion)
  source = tmp_path / "weights.bin"
  source.write_bytes(b"random")
  run = write_imported(
      tmp_path / "run", config, _random_variables(model, (32, 32, 3)),
      class_names=list(FER2013_CLASSES), image_shape=(48, 48, 1),
      source_file=source, source={"format": "test"}, argv=["test"])
  out = tmp_path / "gabor.onnx"
  proc = ferjax_cli("export", "--format", "onnx", "--workdir", str(run),
                    "--out", str(out))
  assert proc.returncode == 2
  assert ("model 'lenet5' does not lower to ONNX: primitive 'fft' has no "
          "ONNX lowering") in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr and not out.exists()


def test_the_classifier_with_its_preprocessing_lowers(classifier):
  """uint8 crops in, probabilities out: resize, channel tiling (``tile``)
  and softmax lower too (benchmarks/recognition.py --runtimes uses this)."""
  proto = jaxpr_onnx.to_onnx(classifier.predict_fn, classifier.crop_shape,
                             input_dtypes=[np.uint8])
  crops = _generated_faces()
  np.testing.assert_allclose(_ort_logits(proto, crops),
                             classifier.predict(crops), atol=1e-6)


def test_mtcnn_pnet_with_two_inputs_and_max_pooling_lowers():
  from ferjax.recognition import mtcnn  # pylint: disable=g-import-not-at-top
  variables = mtcnn.load_variables("pnet")
  fn = lambda x, valid: mtcnn.PNet().apply(variables, x, valid)
  proto = jaxpr_onnx.to_onnx(fn, (42, 42, 3), (2,),
                             input_dtypes=[np.float32, np.int32],
                             input_names=["tiles", "valid"],
                             output_names=["offsets", "probs"])
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (3, 42, 42, 3)).astype(np.float32)
  valid = np.asarray([[40, 40], [30, 17], [5, 40]], np.int32)
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  session = ort.InferenceSession(proto.SerializeToString(),
                                 providers=["CPUExecutionProvider"])
  got = session.run(None, {"tiles": x, "valid": valid})
  for g, w in zip(got, jax.jit(fn)(x, valid)):
    np.testing.assert_allclose(g, np.asarray(w), atol=1e-5)


@pytest.mark.skipif(not SHARED_PHOTOS.is_dir(),
                    reason=f"{SHARED_PHOTOS} absent")
def test_the_runtime_benchmark_finds_the_same_faces_with_onnx_runtime():
  import recognition  # benchmarks/recognition.py  pylint: disable=g-import-not-at-top
  from ferjax.recognition import pipeline, predict  # pylint: disable=g-import-not-at-top
  image = predict.load_image(SHARED_PHOTOS / "faces" / "group.jpeg")
  want = pipeline.get_detector("mtcnn").detect(image)
  got = recognition.onnx_detector("mtcnn").detect(image)
  assert len(got) == len(want) >= 2
  for g, w in zip(got, want):
    np.testing.assert_allclose(g.box, w.box, atol=1e-3)
