"""MediaPipe's ``face_landmark.tflite`` as the weights of ``FaceMesh``.

  pip download --no-deps mediapipe==0.10.21 -d /tmp/mp  # the cp311 wheel
  ferjax convert facemesh /tmp/mp/mediapipe-0.10.21-cp311-*.whl OUT

The file ships only in mediapipe wheels up to 0.10.21 (which require
numpy<2, so mediapipe is no dependency of ferjax); the source may be that
wheel or the ``.tflite`` taken out of it. The flatbuffer is read once with
the ``tflite`` package: every weight sits behind a DEQUANTIZE of a float16
tensor; those are kept as float16, laid out for Flax, and checked against
``FaceMesh``'s parameter shapes. ``OUT`` (a new directory) receives
``face_landmark.npz``, ``PROVENANCE.txt`` (source file names, SHA-256,
command) and, from a wheel, its ``LICENSE`` (Apache-2.0).
"""

import collections
import hashlib
import io
import os
import pathlib
import zipfile
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from ferjax import atomic
from ferjax.landmarks import facemesh

WHEEL_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
# The graph of face_landmark.tflite in mediapipe 0.10.21; another file is
# another network and is refused before anything is written.
EXPECTED_OPS = {"CONV_2D": 25, "DEPTHWISE_CONV_2D": 20, "PRELU": 23,
                "ADD": 20, "MAX_POOL_2D": 6, "PAD": 3, "DEQUANTIZE": 113}


def _import_tflite():
  try:
    import tflite  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("ferjax convert facemesh reads the TFLite flatbuffer "
                      "with the tflite package: pip install tflite") from e
  return tflite


def read_source(path: str | os.PathLike) -> tuple[bytes, dict[str, str],
                                                   str | None]:
  """The ``.tflite`` bytes of ``path`` (a mediapipe wheel or the file),
  provenance lines, and the wheel's LICENSE text (None for a bare file)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  raw = path.read_bytes()
  provenance = {"source": path.name,
                "source_sha256": hashlib.sha256(raw).hexdigest()}
  if not zipfile.is_zipfile(path):
    return raw, provenance, None
  with zipfile.ZipFile(path) as wheel:
    names = wheel.namelist()
    if WHEEL_MEMBER not in names:
      raise ValueError(f"{path}: holds no {WHEEL_MEMBER} (mediapipe wheels "
                       f"after 0.10.21 dropped it; use 0.10.21)")
    data = wheel.read(WHEEL_MEMBER)
    licenses = [n for n in names if n.endswith(".dist-info/LICENSE")]
    license_text = wheel.read(licenses[0]).decode() if licenses else None
  provenance["member"] = WHEEL_MEMBER
  return data, provenance, license_text


def read_weights(data: bytes) -> dict[str, np.ndarray]:
  """Tensor name (``conv2d_1/Kernel``) -> float16 array in TFLite layout,
  for every DEQUANTIZE input of the graph; the op counts are checked."""
  tflite = _import_tflite()
  names = {v: k for k, v in vars(tflite.BuiltinOperator).items()
           if not k.startswith("_")}
  try:
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
    kinds = []
    for op in ops:
      code = model.OperatorCodes(op.OpcodeIndex())
      kinds.append(names.get(max(code.BuiltinCode(),
                                 code.DeprecatedBuiltinCode()), "?"))
  except Exception as e:  # pylint: disable=broad-except
    # A damaged flatbuffer fails anywhere inside the generated readers.
    raise ValueError(f"not a TFLite model: {type(e).__name__}: {e}") from None
  counts = dict(collections.Counter(kinds))
  if counts != EXPECTED_OPS:
    raise ValueError(f"not MediaPipe's face_landmark.tflite: its operators "
                     f"are {counts}, expected {EXPECTED_OPS}")
  weights = {}
  for op, kind in zip(ops, kinds):
    if kind != "DEQUANTIZE":
      continue
    tensor = graph.Tensors(op.Inputs(0))
    if tensor.Type() != tflite.TensorType.FLOAT16:
      raise ValueError(f"{tensor.Name().decode()}: expected a float16 "
                       f"tensor behind DEQUANTIZE, got type {tensor.Type()}")
    buffer = model.Buffers(tensor.Buffer()).DataAsNumpy()
    weights[tensor.Name().decode()] = np.frombuffer(
        buffer.tobytes(), np.float16).reshape(tensor.ShapeAsNumpy())
  return weights


def to_params(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Flax layout, keyed ``layer/param``: convolutions (O, H, W, I) ->
  (H, W, I, O), depthwise (1, H, W, C) -> (H, W, 1, C); checked against
  ``FaceMesh``'s parameters."""
  flat = {}
  for name, value in weights.items():
    layer, _, kind = name.partition("/")
    if kind == "Kernel":
      axes = (1, 2, 0, 3) if layer.startswith("depthwise") else (1, 2, 3, 0)
      flat[f"{layer}/kernel"] = np.transpose(value, axes)
    elif kind == "Bias":
      flat[f"{layer}/bias"] = value
    elif kind == "Alpha":
      flat[f"{layer}/alpha"] = value
    else:
      raise ValueError(f"{name}: a weight of an unexpected kind")
  expected = {"/".join(k.key for k in path): leaf.shape for path, leaf in
              jax.tree_util.tree_leaves_with_path(facemesh.abstract_params())}
  got = {k: v.shape for k, v in flat.items()}
  if got != expected:
    missing = sorted(set(expected) - set(got))
    wrong = sorted(k for k in set(got) & set(expected)
                   if got[k] != expected[k])
    raise ValueError(f"the file's weights do not fit FaceMesh: missing "
                     f"{missing}, shapes differ for {wrong}, extra "
                     f"{sorted(set(got) - set(expected))}")
  return flat


def convert(source: str | os.PathLike, out: str | os.PathLike, *,
            argv: Sequence[str]) -> pathlib.Path:
  """Writes ``out`` (a new directory): the weights, PROVENANCE.txt and,
  from a wheel, LICENSE."""
  out = pathlib.Path(out)
  if out.exists():
    raise FileExistsError(f"{out}: exists; give a new directory")
  data, provenance, license_text = read_source(source)
  params = to_params(read_weights(data))
  buffer = io.BytesIO()
  np.savez(buffer, **params)
  provenance["tflite_sha256"] = hashlib.sha256(data).hexdigest()
  provenance["weights"] = (f"{len(params)} float16 arrays, "
                           f"{sum(v.size for v in params.values())} values")
  provenance["command"] = " ".join(argv)
  with atomic.directory(out) as tmp:
    (tmp / "face_landmark.npz").write_bytes(buffer.getvalue())
    (tmp / "PROVENANCE.txt").write_text(
        "MediaPipe FaceMesh (face_landmark.tflite, Apache-2.0, Copyright "
        "Google LLC)\nconverted by ferjax.convert.facemesh_tflite\n" +
        "".join(f"{k}: {v}\n" for k, v in provenance.items()))
    if license_text is not None:
      (tmp / "LICENSE").write_text(license_text)
  return out
