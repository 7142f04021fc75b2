"""Face detection precision and recall, every detector side by side.

    python benchmarks/detection.py [--json] \
        [--mtcnn-python /tmp/mtcnn-ref/bin/python]

Runs ``auto``, ``mtcnn`` and ``haar`` (as ``recognize`` runs them) and, with
``--mtcnn-python`` (a Python with ``mtcnn==1.0.0`` and TensorFlow, see
tests/data/MTCNN_REFERENCE.md), the original ``mtcnn`` package on the
full-size images, on every image with known faces the project has:

- ``photos``: ../shared/data/photos, boxes in detection_truth.json;
- ``resolution``: ../shared/data/resolution, one face at four sizes;
- ``video``: every 11th frame of ../shared/data/video's clip, face counts
  only (by eye, see the JSON), so precision and recall there count faces
  per frame (min(found, true) are right) instead of matching boxes;
- ``negatives``: generated here, no face, so every detection is false:
  walls, textures and dark clothing-like folds with a lighter background.

A detection matches an unmatched true face when their IoU is at least 0.5
(best-scored detections first); detections matching an optional face (one
cut off by the frame) count neither way. Every false detection is listed.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TRUTH = Path(__file__).resolve().with_name("detection_truth.json")
MATCH_IOU = 0.5
NEGATIVE_SIZES = ((720, 1280), (1080, 1920))

# Runs in the original package's environment: images from one .npz file,
# boxes (x, y, w, h, score) as JSON, one list per image, in the file's order.
_ORIGINAL = """
import json, sys
import numpy as np
from mtcnn import MTCNN
images = np.load(sys.argv[1])
detector = MTCNN()
out = [[[*map(float, f["box"]), float(f["confidence"])]
        for f in detector.detect_faces(images[k])] for k in images.files]
print(json.dumps(out))
"""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
  """Intersection over union of two (x, y, w, h) boxes."""
  iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
  union = a[2] * a[3] + b[2] * b[3] - iw * ih
  return iw * ih / union if union > 0 else 0.0


def match(found: Sequence[tuple], faces: Sequence[Sequence[float]],
          optional: Sequence[Sequence[float]] = ()) -> tuple[list, list, int]:
  """(true detections, false detections, missed faces) of detections
  ``found`` (x, y, w, h, score or None) against true boxes ``faces``."""
  free = list(faces)
  true, false = [], []
  for f in _ranked(found):
    best = max(free, key=lambda t: iou(f, t), default=None)
    if best is not None and iou(f, best) >= MATCH_IOU:
      free.remove(best)
      true.append(f)
    elif not any(iou(f, o) >= MATCH_IOU for o in optional):
      false.append(f)
  return true, false, len(free)


def _ranked(found: Sequence[tuple]) -> list[tuple]:
  return sorted(found, key=lambda f: -(f[4] if f[4] is not None else 1.0))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int],
                  sigma: float) -> np.ndarray:
  noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32),
                           (0, 0), sigma)
  return noise / max(float(noise.std()), 1e-6)


def negatives(seed: int = 0, sizes: Sequence[tuple[int, int]] = NEGATIVE_SIZES
              ) -> Iterator[tuple[str, np.ndarray]]:
  """Faceless uint8 RGB images of each (height, width) of ``sizes``: (name,
  image), the same for the same seed.

  Walls (one colour, a lighting gradient, sensor noise), textures (smooth
  noise at four scales, a woven grating) and dark clothing (navy or
  charcoal cloth shaded by soft folds, its edge a blurred curve against a
  lighter, blurred background), each JPEG-compressed like a photo.
  """
  rng = np.random.default_rng(seed)
  for h, w in sizes:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / h, xx / w
    for i, colour in enumerate(((225, 215, 195), (245, 245, 240),
                                (128, 128, 128), (40, 50, 80))):
      light = 0.85 + 0.3 * (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))
      image = (np.asarray(colour, np.float32) * light[..., None]
               + rng.normal(0, 2, (h, w, 3)))
      yield f"wall-{i}-{h}p", _jpeg(image)
    for sigma in (1, 3, 8, 20):
      grey = 120 + 45 * _smooth_noise(rng, (h, w), sigma)
      tint = rng.uniform(0.7, 1.1, 3).astype(np.float32)
      yield f"texture-s{sigma}-{h}p", _jpeg(grey[..., None] * tint)
    angle = rng.uniform(0, np.pi)
    weave = np.sin(2 * np.pi * 40 * (xx * np.cos(angle) + yy * np.sin(angle)))
    grey = 110 + 30 * weave + 15 * _smooth_noise(rng, (h, w), 2)
    yield f"texture-weave-{h}p", _jpeg(np.repeat(grey[..., None], 3, 2))
    for i, cloth in enumerate(((22, 26, 42), (30, 30, 32), (18, 20, 30))):
      folds = sum(rng.uniform(0.3, 1) * np.sin(
          2 * np.pi * (rng.uniform(1, 6) * xx + rng.uniform(1, 6) * yy)
          + rng.uniform(0, 2 * np.pi)) for _ in range(4))
      shade = 1 + 0.25 * folds + 0.2 * _smooth_noise(rng, (h, w), h / 40)
      inside = (xx - rng.uniform(0.4, 0.8)) - 0.25 * np.sin(
          np.pi * yy * rng.uniform(1, 2) + rng.uniform(0, np.pi)) < 0
      edge = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 3)[..., None]
      background = cv2.GaussianBlur(
          (rng.uniform(60, 170, 3).astype(np.float32)
           * (1 + 0.3 * _smooth_noise(rng, (h, w), h / 30))[..., None]),
          (0, 0), 4)
      image = (edge * np.asarray(cloth, np.float32) * shade[..., None]
               + (1 - edge) * background)
      yield f"clothing-{i}-{h}p", _jpeg(image + rng.normal(0, 1.5, (h, w, 3)))


def _jpeg(image: np.ndarray) -> np.ndarray:
  image = np.clip(image, 0, 255).astype(np.uint8)
  ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
  assert ok
  return cv2.imdecode(data, cv2.IMREAD_COLOR)  # same channel order back


def images(truth: dict, data: Path) -> Iterator[tuple[str, str, np.ndarray,
                                                     dict]]:
  """(set, name, uint8 RGB image, truth) of every benchmark image."""
  from ferjax.recognition import predict, video
  for part in ("photos", "resolution"):
    for name, entry in truth[part].items():
      yield part, name, predict.load_image(data / part / name), entry
  clip = truth["video"]
  counts = clip["counts"]
  for frame in video.read_frames(data / "video" / clip["file"]):
    if str(frame.index) in counts:
      yield ("video", f"frame {frame.index}", frame.image,
             {"count": counts[str(frame.index)]})
  for name, image in negatives():
    yield "negatives", name, image, {"faces": []}


def score(found: Sequence[tuple], entry: dict) -> tuple[list, list, int]:
  """(true detections, false detections, missed faces) of one image; with
  only a face count, the best-scored min(found, count) are the true ones."""
  if "count" in entry:
    ranked = _ranked(found)
    hits = min(len(found), entry["count"])
    return ranked[:hits], ranked[hits:], entry["count"] - hits
  return match(found, entry["faces"], entry.get("optional", ()))


def _original_missing(python: str) -> str | None:
  """Why ``python`` cannot run the original package, or None if it can
  (found without importing it, which loads TensorFlow)."""
  try:
    found = subprocess.run(
        [python, "-c", "import importlib.util as u; "
         "print(u.find_spec('mtcnn') is not None)"],
        capture_output=True, text=True, timeout=60)
  except OSError as e:
    return f"cannot be run ({e.strerror or e})"
  if found.returncode or found.stdout.strip() != "True":
    return ("has no mtcnn package (pip install mtcnn==1.0.0 tensorflow "
            "there; see tests/data/MTCNN_REFERENCE.md)")
  return None


def run_original(python: str, pictures: Sequence[np.ndarray]) -> list:
  """The original package's detections, (x, y, w, h, score) per image."""
  with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "images.npz"
    np.savez(path, *pictures)
    result = subprocess.run([python, "-c", _ORIGINAL, str(path)],
                            capture_output=True, text=True, check=True)
  return [[tuple(f) for f in faces]
          for faces in json.loads(result.stdout.strip().splitlines()[-1])]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", type=Path, default=SHARED,
                      help="folder holding photos/, resolution/, video/")
  parser.add_argument("--detectors", default="auto,mtcnn,haar")
  parser.add_argument("--mtcnn-python",
                      help="Python of an environment with the original mtcnn")
  parser.add_argument("--json", action="store_true",
                      help="print one JSON object instead of tables")
  args = parser.parse_args()
  for part in ("photos", "resolution", "video"):
    if not (args.data / part).is_dir():
      parser.error(f"{args.data / part}: not a folder (see --data)")
  # Every argument checked before the images are read and detected.
  from ferjax.recognition.detectors import DETECTORS
  unknown = [n for n in args.detectors.split(",") if n not in DETECTORS]
  if unknown:
    parser.error(f"--detectors: unknown {', '.join(map(repr, unknown))}; "
                 f"expected a comma-separated list of {', '.join(DETECTORS)}")
  if args.mtcnn_python:
    problem = _original_missing(args.mtcnn_python)
    if problem:
      parser.error(f"--mtcnn-python {args.mtcnn_python}: {problem}")

  from ferjax.recognition import pipeline
  truth = json.loads(TRUTH.read_text())
  data = list(images(truth, args.data))
  found = {}
  seconds = {}
  for name in args.detectors.split(","):
    detector = pipeline.get_detector(name)
    start = time.perf_counter()
    found[name] = [[(*f.box, f.score) for f in detector.detect(image)]
                   for _, _, image, _ in data]
    seconds[name] = time.perf_counter() - start
  if args.mtcnn_python:
    start = time.perf_counter()
    found["original mtcnn"] = run_original(args.mtcnn_python,
                                           [d[2] for d in data])
    seconds["original mtcnn"] = time.perf_counter() - start

  report = {"match_iou": MATCH_IOU, "detectors": {}}
  for name, per_image in found.items():
    sets = {}
    false_list, true_scores = [], []
    for (part, image_name, _, entry), faces in zip(data, per_image,
                                                   strict=True):
      true, false, missed = score(faces, entry)
      row = sets.setdefault(part, {"images": 0, "tp": 0, "fp": 0, "fn": 0})
      row["images"] += 1
      row["tp"] += len(true)
      row["fp"] += len(false)
      row["fn"] += missed
      false_list += [{"set": part, "image": image_name,
                      "box": [round(v) for v in f[:4]],
                      "score": None if f[4] is None else round(f[4], 3)}
                     for f in false]
      true_scores += [round(f[4], 3) for f in true if f[4] is not None]
    total = {k: sum(s[k] for s in sets.values())
             for k in ("images", "tp", "fp", "fn")}
    for row in [*sets.values(), total]:
      found_n, true_n = row["tp"] + row["fp"], row["tp"] + row["fn"]
      row["precision"] = round(row["tp"] / found_n, 3) if found_n else None
      row["recall"] = round(row["tp"] / true_n, 3) if true_n else None
    report["detectors"][name] = {"sets": sets, "all": total,
                                 "seconds": round(seconds[name], 1),
                                 "false": false_list,
                                 "true_scores": sorted(true_scores)}
  if args.json:
    print(json.dumps(report, indent=1))
    return
  print("| detector | set | images | faces | found | true pos. | false pos. "
        "| precision | recall |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name, result in report["detectors"].items():
    for part, row in [*result["sets"].items(), ("all", result["all"])]:
      print(f"| {name} | {part} | {row['images']} | {row['tp'] + row['fn']} "
            f"| {row['tp'] + row['fp']} | {row['tp']} | {row['fp']} "
            f"| {row['precision']} | {row['recall']} |")
  for name, result in report["detectors"].items():
    print(f"\n{name} ({result['seconds']} s); lowest scores of true "
          f"detections: {result['true_scores'][:5]}; false detections:")
    for f in result["false"]:
      print(f"  {f['set']} {f['image']}: {f['box']} score {f['score']}")
  sys.stdout.flush()


if __name__ == "__main__":
  main()
