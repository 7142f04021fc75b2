"""The landmark stage's cost: FaceMesh per face, and video with and without.

    python benchmarks/landmarks.py [--frames 60] [--tflite face_landmark.tflite]
        [--data-dir TFDS_DIR] [--json]

Measures in one run, side by side (warm: each timed pass follows an untimed
one, so nothing compiles while timed; medians of ``--repeats`` passes,
alternating the variants):

- FaceMesh in Flax (XLA:CPU) on batches of 1, 8 and 64 crops: faces/s; with
  ``--tflite`` (the file, or the mediapipe 0.10.21 wheel, and the
  ``landmarks-parity`` extra) MediaPipe's own interpreter, one crop a call
  (it takes one), and the ratio (wall and CPU milliseconds per face);
- ``ferjax predict``'s video path on the first ``--frames`` frames of the
  shared clip (../shared/data/video/short_hamilton_clip.mp4; detector auto,
  full detection every 10 frames, an untrained LeNet-5: classifying costs
  the same whatever the weights): frames/s without and with the landmark
  stage (``--landmarks``), their ratio, the same from CPU seconds, and the
  added CPU milliseconds per face;
- with ``--data-dir`` (a prepared fer2013), the dataset extraction of
  ``data.landmarks`` (stored 48x48 faces, 64 a batch) on 512 PublicTest
  faces: faces/s.

On a machine shared with other jobs the figures are noisy: the JSON keeps
the load average and each pass's CPU seconds (user + system).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _timed(fn, repeats: int) -> tuple[float, float]:
  """Median wall and CPU seconds of ``fn()`` over ``repeats`` warm calls."""
  fn()
  walls, cpus = [], []
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), _cpu()
    fn()
    walls.append(time.perf_counter() - wall)
    cpus.append(_cpu() - cpu)
  return statistics.median(walls), statistics.median(cpus)


def facemesh_speed(repeats: int, tflite: str | None) -> dict:
  from ferjax.landmarks import facemesh
  variables = facemesh.load_variables()
  rng = np.random.default_rng(0)
  out = {}
  for batch in (1, 8, 64):
    crops = rng.random((batch, 192, 192, 3), np.float32)
    wall, cpu = _timed(lambda: facemesh.run(variables, crops), repeats)
    out[f"flax_batch{batch}_faces_per_s"] = round(batch / wall, 1)
    out[f"flax_batch{batch}_cpu_ms_per_face"] = round(1000 * cpu / batch, 2)
  if tflite:
    from ferjax.convert import facemesh_tflite
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(
        model_content=facemesh_tflite.read_source(tflite)[0])
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    crops = rng.random((8, 1, 192, 192, 3), np.float32)

    def invoke():
      for crop in crops:
        interpreter.set_tensor(index, crop)
        interpreter.invoke()

    wall, cpu = _timed(invoke, repeats)
    out["tflite_faces_per_s"] = round(8 / wall, 1)
    out["tflite_cpu_ms_per_face"] = round(1000 * cpu / 8, 2)
    out["flax_batch1_over_tflite"] = round(
        out["flax_batch1_faces_per_s"] / out["tflite_faces_per_s"], 2)
  return out


def video_speed(frames: int, repeats: int, shared: Path) -> dict:
  import jax
  import jax.numpy as jnp
  from ferjax.labels import FER2013_CLASSES
  from ferjax.models import create_model
  from ferjax.recognition import predict
  from ferjax.recognition.classifier import classifier_from_model
  from ferjax.recognition.mesh import Mesher
  model = create_model("lenet5", num_classes=7)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  classifier = classifier_from_model(
      model, variables, class_names=FER2013_CLASSES, crop_shape=(48, 48, 1),
      image_size=(32, 32), channels=3, mean=(0.5,), std=(0.25,))
  clip = shared / "video" / "short_hamilton_clip.mp4"
  if not clip.is_file():
    return {"video": f"{clip}: missing"}
  mesher = Mesher()
  faces = [0]

  def run(with_mesh):
    def go():
      faces[0] = 0
      for record in predict.predict_video(
          str(clip), classifier, max_frames=frames,
          mesher=mesher if with_mesh else None, progress=lambda _: None):
        faces[0] += len(record.get("faces", ()))
    return go

  run(False)(), run(True)()  # Compile both before timing either.
  walls = {False: [], True: []}
  cpus = {False: [], True: []}
  for _ in range(repeats):
    for with_mesh in (False, True):
      start, cpu = time.perf_counter(), _cpu()
      run(with_mesh)()
      walls[with_mesh].append(time.perf_counter() - start)
      cpus[with_mesh].append(_cpu() - cpu)
  plain, meshed = (statistics.median(walls[k]) for k in (False, True))
  plain_cpu, meshed_cpu = (statistics.median(cpus[k]) for k in (False, True))
  return {"frames": frames, "faces": faces[0],
          "fps_without_landmarks": round(frames / plain, 1),
          "fps_with_landmarks": round(frames / meshed, 1),
          "with_over_without": round(plain / meshed, 2),
          "cpu_fps_without_landmarks": round(frames / plain_cpu, 1),
          "cpu_fps_with_landmarks": round(frames / meshed_cpu, 1),
          "landmark_cpu_ms_per_face": round(
              1000 * (meshed_cpu - plain_cpu) / max(faces[0], 1), 2)}


def extraction_speed(data_dir: str, repeats: int) -> dict:
  from ferjax.data import landmarks, loading
  builder = loading.prepared_builder("fer2013", data_dir=data_dir)
  images = loading.read_split(builder, "public_test[:512]").images
  wall, cpu = _timed(lambda: landmarks.mesh_images(images), repeats)
  return {"extraction_faces_per_s": round(len(images) / wall, 1),
          "extraction_cpu_ms_per_face": round(1000 * cpu / len(images), 2)}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--frames", type=int, default=60)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--tflite")
  parser.add_argument("--data-dir")
  parser.add_argument("--shared", type=Path, default=SHARED,
                      help="the shared data folder (default %(default)s)")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  result = {"loadavg_start": [round(v, 2) for v in os.getloadavg()]}
  result["facemesh"] = facemesh_speed(args.repeats, args.tflite)
  result["video"] = video_speed(args.frames, args.repeats, args.shared)
  if args.data_dir:
    result["extraction"] = extraction_speed(args.data_dir, args.repeats)
  result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
  if args.json:
    print(json.dumps(result))
  else:
    for part, values in result.items():
      print(part, values if not isinstance(values, dict) else "")
      if isinstance(values, dict):
        for k, v in values.items():
          print(f"  {k}: {v}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
