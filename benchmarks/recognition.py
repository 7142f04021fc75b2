"""Recognition speed: video end to end, image size, cold start, original MTCNN.

    python benchmarks/recognition.py --workdir RUN --json \
        [--mtcnn-python /tmp/mtcnn-ref/bin/python]

Measures, on the shared clip (../shared/data/video/short_hamilton_clip.mp4):

- per detector (haar, mtcnn, auto) and ``--detect-every`` setting, frames/s
  and faces/s end to end (decode, detect or follow, track, align, classify),
  warm: after one untimed pass over the same frames, so nothing compiles in
  the timed pass; the first (compiling) pass is reported as ``cold_fps``;
- per detector, the median time of ``recognize`` on each of
  ../shared/data/resolution/obama-{240p,480p,720p,1080p}.jpg (warm);
- the wall time of ``ferjax predict --workdir RUN PHOTO`` in a fresh process
  with an empty and then with the filled compilation cache (needs --workdir);
- with ``--runtimes`` (needs the onnx extra), ONNX Runtime against XLA:CPU
  in one run on the same frames: the classifier and MTCNN's three nets
  lowered to ONNX (``ferjax.export.jaxpr_onnx``) and run by ONNX Runtime, the rest
  of ``ferjax predict`` (decode, pyramid, NMS, alignment, tracking)
  unchanged; frames/s on the video and photos/s on the shared photos per
  runtime, ``--repeats`` times alternating, medians and their ratio;
- with ``--mtcnn-python`` (a Python with ``mtcnn==1.0.0`` and TensorFlow, see
  tests/data/MTCNN_REFERENCE.md), the original package's ``detect_faces``
  and ferjax's ``MTCNN.detect`` on the same frames, median seconds per frame,
  and their ratio.

Without --workdir the classifier is an untrained LeNet-5 (classification
costs the same whatever the weights). Timings on a machine shared with other
jobs are noisy: the JSON records the load average with each figure, and
beside each wall-clock figure the CPU time the work took (``*_cpu``: user +
system seconds of this process, or of the child for the cold start), which
other jobs inflate far less; on an idle machine the wall time is about the
CPU time or less (XLA uses both cores).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESOLUTIONS = ("240p", "480p", "720p", "1080p")

# Runs in the original package's environment: frames come as one .npy file.
_ORIGINAL = """
import json, sys, time
import numpy as np
from mtcnn import MTCNN
frames = np.load(sys.argv[1])
detector = MTCNN()
detector.detect_faces(frames[0])
times, faces, cpu = [], 0, time.process_time()
for frame in frames:
  start = time.perf_counter()
  faces += len(detector.detect_faces(frame))
  times.append(time.perf_counter() - start)
cpu = (time.process_time() - cpu) / len(frames)
print(json.dumps({"times": times, "faces": faces, "cpu": cpu}))
"""


def _classifier(workdir: str | None):
  from ferjax.recognition.classifier import (classifier_from_model,
                                             load_classifier)
  if workdir:
    return load_classifier(workdir)
  import jax
  import jax.numpy as jnp

  from ferjax.labels import FER2013_CLASSES
  from ferjax.models import create_model
  model = create_model("lenet5", num_classes=7)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  return classifier_from_model(
      model, variables, class_names=FER2013_CLASSES, crop_shape=(48, 48, 1),
      image_size=(32, 32), channels=3, mean=[0.5], std=[0.25])


def onnx_session(model_proto):
  import onnxruntime as ort
  return ort.InferenceSession(model_proto.SerializeToString(),
                              providers=["CPUExecutionProvider"])


def onnx_classifier(classifier):
  """``classifier`` with its whole predict function (uint8 crops to
  probabilities, preprocessing included) run by ONNX Runtime."""
  import dataclasses

  from ferjax.export import jaxpr_onnx
  session = onnx_session(jaxpr_onnx.to_onnx(
      classifier.predict_fn, classifier.crop_shape, input_dtypes=[np.uint8]))
  return dataclasses.replace(
      classifier, predict_fn=lambda crops: session.run(
          None, {"input": np.asarray(crops)})[0])


class _OnnxNet:
  """One MTCNN net called as ``MTCNN`` calls its jitted ``apply``, run by
  ONNX Runtime: one session per input shape (P-Net's tile sizes)."""

  def __init__(self, module, variables):
    self._module, self._variables, self._sessions = module, variables, {}

  def __call__(self, variables, *inputs):
    del variables  # Baked into the graph.
    from ferjax.export import jaxpr_onnx
    key = tuple(x.shape[1:] for x in inputs)
    if key not in self._sessions:
      names = [f"in{i}" for i in range(len(inputs))]
      import jax
      outputs = jax.eval_shape(self._module.apply, self._variables, *(
          jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype) for x in inputs))
      self._sessions[key] = (names, onnx_session(jaxpr_onnx.to_onnx(
          lambda *xs: self._module.apply(self._variables, *xs), *key,
          input_dtypes=[x.dtype for x in inputs], input_names=names,
          output_names=[f"out{i}" for i in range(len(outputs))])))
    names, session = self._sessions[key]
    return session.run(None, dict(zip(names, inputs)))


def onnx_detector(name: str):
  """The named detector with MTCNN's nets run by ONNX Runtime."""
  from ferjax.recognition import mtcnn, pipeline
  from ferjax.recognition.detectors import DETECTORS
  spec = DETECTORS[name]
  detector = mtcnn.MTCNN()
  modules = {"pnet": mtcnn.PNet(), "rnet": mtcnn.RNet(),
             "onet": mtcnn.ONet()}
  # pylint: disable=protected-access
  detector._nets = {net: _OnnxNet(module, detector._variables[net])
                    for net, module in modules.items()}
  return pipeline.MultiResolution(detector, spec.sides, spec.min_face,
                                  spec.min_score)


def _photos(folder: Path) -> list[np.ndarray]:
  from ferjax.recognition import predict
  return [predict.load_image(p) for p in sorted(folder.iterdir())]


def runtimes(video: Path, photos: Path, classifier, detector: str,
             every: int, max_frames: int | None, repeats: int) -> dict:
  """XLA:CPU and ONNX Runtime, alternating, on the same frames and photos
  (decoded once, before timing: decoding costs both the same)."""
  from ferjax.recognition import pipeline, stream, video as video_lib
  frames = [f for f in video_lib.read_frames(video, max_frames=max_frames)]
  photos = _photos(photos)
  setups = {"xla": (classifier, pipeline.get_detector(detector)),
            "onnxruntime": (onnx_classifier(classifier),
                            onnx_detector(detector))}
  times = {name: {"video": [], "photos": []} for name in setups}
  faces = {}
  for rep in range(repeats + 1):  # The first round warms up, untimed.
    for name, (clf, det) in setups.items():
      s = stream.FaceStream(clf, det, detect_every=every)
      start = time.perf_counter()
      found = sum(len(s.process(f.image, f.index, f.time).faces)
                  for f in frames)
      video_s = time.perf_counter() - start
      start = time.perf_counter()
      labels = [[r.label for r in pipeline.recognize(p, clf, det)]
                for p in photos]
      photos_s = time.perf_counter() - start
      faces[name] = {"video_faces": found, "photo_labels": labels}
      if rep:
        times[name]["video"].append(video_s)
        times[name]["photos"].append(photos_s)
  out = {"detector": detector, "detect_every": every, "frames": len(frames),
         "photos": len(photos), "repeats": repeats, "load": _load()}
  for name in setups:
    out[name] = {
        "fps": round(len(frames) / statistics.median(times[name]["video"]),
                     2),
        "photos_per_s": round(len(photos) / statistics.median(
            times[name]["photos"]), 3),
        "video_s": [round(t, 2) for t in times[name]["video"]],
        "photos_s": [round(t, 2) for t in times[name]["photos"]],
        **faces[name]}
  out["speedup_video"] = round(out["onnxruntime"]["fps"] / out["xla"]["fps"],
                               2)
  out["speedup_photos"] = round(out["onnxruntime"]["photos_per_s"]
                                / out["xla"]["photos_per_s"], 2)
  return out


def _load() -> list[float]:
  return [round(v, 2) for v in os.getloadavg()]


def video_end_to_end(path: Path, classifier, detector: str, every: int,
                     max_frames: int | None) -> dict:
  """Two passes over the video, decoding included; the second is timed."""
  from ferjax.recognition import stream, video
  passes = []
  for _ in range(2):
    s = stream.FaceStream(classifier, detector, detect_every=every)
    faces = frames = 0
    start, cpu = time.perf_counter(), time.process_time()
    for frame in video.read_frames(path, max_frames=max_frames):
      faces += len(s.process(frame.image, frame.index, frame.time).faces)
      frames += 1
    passes.append((time.perf_counter() - start, time.process_time() - cpu,
                   frames, faces))
  (cold, _, _, _), (warm, warm_cpu, frames, faces) = passes
  return {"detector": detector, "detect_every": every, "frames": frames,
          "faces": faces, "fps": round(frames / warm, 2),
          "faces_per_s": round(faces / warm, 2),
          "fps_cpu": round(frames / warm_cpu, 2),
          "cold_fps": round(frames / cold, 2), "load": _load()}


def per_resolution(classifier, detector: str, repeats: int = 3) -> dict:
  """Median seconds of ``recognize`` per image size, after a warm-up."""
  from ferjax.recognition import pipeline, predict
  out = {}
  for name in RESOLUTIONS:
    image = predict.load_image(SHARED / "resolution" / f"obama-{name}.jpg")
    pipeline.recognize(image, classifier, detector)
    times, cpus = [], []
    for _ in range(repeats):
      start, cpu = time.perf_counter(), time.process_time()
      faces = pipeline.recognize(image, classifier, detector)
      times.append(time.perf_counter() - start)
      cpus.append(time.process_time() - cpu)
    out[name] = {"shape": list(image.shape[:2]),
                 "seconds": round(statistics.median(times), 4),
                 "seconds_cpu": round(statistics.median(cpus), 4),
                 "faces": len(faces)}
  return out


def cold_start(workdir: str, photo: Path) -> dict:
  """Wall seconds of `ferjax predict` in fresh processes, cache empty then
  filled."""
  ferjax = Path(sys.executable).with_name("ferjax")
  out = {}
  with tempfile.TemporaryDirectory() as cache:
    env = {**os.environ, "FERJAX_COMPILATION_CACHE": cache}
    for name in ("empty_cache", "filled_cache"):
      before = resource.getrusage(resource.RUSAGE_CHILDREN)
      start = time.perf_counter()
      subprocess.run([str(ferjax), "predict", "--workdir", workdir,
                      str(photo)], env=env, check=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
      out[f"{name}_s"] = round(time.perf_counter() - start, 2)
      after = resource.getrusage(resource.RUSAGE_CHILDREN)
      out[f"{name}_cpu_s"] = round(after.ru_utime - before.ru_utime
                                   + after.ru_stime - before.ru_stime, 2)
  out["photo"] = str(photo)
  out["load"] = _load()
  return out


def original_mtcnn(python: str, path: Path, frames_used: int) -> dict:
  """The mtcnn package and ferjax's port on the same frames, seconds each."""
  from ferjax.recognition import mtcnn, video
  step = max(1, 275 // frames_used)
  frames = np.stack([f.image for f in video.read_frames(path)][::step])
  ours = mtcnn.MTCNN()
  for frame in frames:  # compiles every batch shape these frames need
    ours.detect(frame)
  times, faces, cpu = [], 0, time.process_time()
  for frame in frames:
    start = time.perf_counter()
    faces += len(ours.detect(frame))
    times.append(time.perf_counter() - start)
  cpu = (time.process_time() - cpu) / len(frames)
  with tempfile.TemporaryDirectory() as tmp:
    np.save(Path(tmp) / "frames.npy", frames)
    result = subprocess.run([python, "-c", _ORIGINAL,
                             str(Path(tmp) / "frames.npy")],
                            capture_output=True, text=True, check=True)
  original = json.loads(result.stdout.strip().splitlines()[-1])
  ferjax_s = statistics.median(times)
  original_s = statistics.median(original["times"])
  return {"frames": len(frames), "ferjax_s_per_frame": round(ferjax_s, 4),
          "original_s_per_frame": round(original_s, 4),
          "speedup": round(original_s / ferjax_s, 2),
          "ferjax_cpu_s_per_frame": round(cpu, 4),
          "original_cpu_s_per_frame": round(original["cpu"], 4),
          "speedup_cpu": round(original["cpu"] / cpu, 2),
          "faces": {"ferjax": faces, "original": original["faces"]},
          "load": _load()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", help="training run for the classifier "
                      "and the cold-start measurement")
  parser.add_argument("--video", type=Path,
                      default=SHARED / "video" / "short_hamilton_clip.mp4")
  parser.add_argument("--photo", type=Path,
                      default=SHARED / "resolution" / "obama-480p.jpg")
  parser.add_argument("--photos", type=Path,
                      default=SHARED / "photos" / "faces",
                      help="folder of photos for --runtimes")
  parser.add_argument("--detectors", default="haar,mtcnn,auto")
  parser.add_argument("--detect-every", default=None,
                      help="comma-separated settings (default: 1 and the "
                      "default)")
  parser.add_argument("--max-frames", type=int,
                      help="time only the first N frames of the video")
  parser.add_argument("--mtcnn-python",
                      help="Python of an environment with the original mtcnn")
  parser.add_argument("--original-frames", type=int, default=25,
                      help="frames for the original-MTCNN comparison")
  parser.add_argument("--runtimes", action="store_true",
                      help="compare ONNX Runtime with XLA:CPU (onnx extra)")
  parser.add_argument("--repeats", type=int, default=3,
                      help="timed rounds of the runtime comparison")
  parser.add_argument("--skip", default="",
                      help="comma-separated parts to skip: video, "
                      "resolution, cold_start")
  parser.add_argument("--json", action="store_true",
                      help="print one JSON object instead of lines")
  args = parser.parse_args()

  from ferjax.recognition import stream
  skip = set(filter(None, args.skip.split(",")))
  everies = ([int(v) for v in args.detect_every.split(",")]
             if args.detect_every else sorted({1, stream.DETECT_EVERY}))
  detectors = args.detectors.split(",")
  classifier = _classifier(args.workdir)
  report = {"load_start": _load(), "cpus": os.cpu_count(),
            "defaults": {"detect_every": stream.DETECT_EVERY,
                         "smooth": stream.SMOOTH}}

  def emit(key, value):
    # Each part as it is measured (stderr under --json), so that a long run
    # cut short keeps what it measured.
    print(key, json.dumps(value), flush=True,
          file=sys.stderr if args.json else sys.stdout)

  if "video" not in skip:
    report["video"] = []
    for detector in detectors:
      for every in everies:
        row = video_end_to_end(args.video, classifier, detector, every,
                               args.max_frames)
        report["video"].append(row)
        emit("video", row)
  if "resolution" not in skip:
    report["resolution"] = {d: per_resolution(classifier, d)
                            for d in detectors}
    emit("resolution", report["resolution"])
  if args.workdir and "cold_start" not in skip:
    report["cold_start"] = cold_start(args.workdir, args.photo)
    emit("cold_start", report["cold_start"])
  if args.runtimes:
    report["runtimes"] = []
    for detector in detectors:
      if detector == "haar":
        continue  # No network to run elsewhere but the classifier's.
      for every in everies:
        row = runtimes(args.video, args.photos, classifier, detector, every,
                       args.max_frames, args.repeats)
        report["runtimes"].append(row)
        emit("runtimes", row)
  if args.mtcnn_python:
    report["original_mtcnn"] = original_mtcnn(args.mtcnn_python, args.video,
                                               args.original_frames)
    emit("original_mtcnn", report["original_mtcnn"])
  report["load_end"] = _load()
  if args.json:
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
  main()
