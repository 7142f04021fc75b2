"""`ferjax predict`: expressions of the faces in image files.

Prints one JSON object per image and line, {"path", "faces": [...]} or
{"path", "error"}, so that one bad file is reported and the rest still run;
with --out, also writes a copy of each image with boxes and labels drawn.

Huge photos are not refused: a 48-megapixel phone photo is a normal input.
Detection runs on downscaled copies (see ferjax.recognition.pipeline) and
the crops come from the full image; only what OpenCV itself will not decode
(over 2^30 pixels) is reported as unreadable.
"""

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferjax import atomic
from ferjax.recognition.classifier import Classifier, load_classifier
from ferjax.recognition.inputs import (ANNOTATED_SUFFIXES, check_out_dir,
                                       expand_paths)
from ferjax.recognition.pipeline import DETECTORS, FaceResult, recognize


class ImageError(Exception):
  """An input file that cannot be used as an image; the message says why."""


def _is_truncated_jpeg(data: bytes) -> bool:
  # OpenCV decodes a cut-off JPEG with a grey bottom and only a warning. A
  # whole one has an end-of-image marker after its last scan (an EXIF
  # thumbnail's marker comes before the scans; maker data may follow it).
  return (data[:2] == b"\xff\xd8"
          and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"))


def load_image(path: str | Path) -> np.ndarray:
  """uint8 RGB (H, W, 3) of an image file, or ImageError saying why not.

  Grey, 16-bit and RGBA files are converted (alpha dropped, high byte of 16
  bits kept) and EXIF orientation is applied, as cv2.IMREAD_COLOR does.
  """
  path = Path(path)
  try:
    data = path.read_bytes()
  except FileNotFoundError as e:
    raise ImageError(f"{path}: no such file") from e
  except IsADirectoryError as e:
    raise ImageError(f"{path}: is a directory, not an image") from e
  except OSError as e:
    raise ImageError(f"{path}: cannot read: {e.strerror or e}") from e
  if not data:
    raise ImageError(f"{path}: empty file (0 bytes), expected an image")
  if _is_truncated_jpeg(data):
    raise ImageError(f"{path}: truncated JPEG (no end-of-image marker after "
                     "the last scan)")
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise ImageError(
        f"{path}: not a readable image (expected JPEG, PNG, BMP, GIF, TIFF "
        "or WebP that OpenCV can decode, under 2^30 pixels)")
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def annotate(image: np.ndarray, results: Sequence[FaceResult]) -> np.ndarray:
  """A BGR copy of RGB ``image`` with each face's box, landmarks, label and
  top score drawn; text is scaled to its face so neighbours stay legible."""
  out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  line = max(1, round(max(image.shape[:2]) / 600))
  font = cv2.FONT_HERSHEY_SIMPLEX
  for r in results:
    x, y, w, h = (round(v) for v in r.box)
    cv2.rectangle(out, (x, y), (x + w, y + h), (0, 255, 0), line)
    for lx, ly in (r.landmarks or {}).values():
      cv2.circle(out, (round(lx), round(ly)), line + 1, (0, 0, 255), -1)
    text = f"{r.label} {r.scores[r.label]:.2f}"
    scale = max(0.4, w / 220)
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    top = y - th - base if y - th - base >= 0 else y + h
    cv2.rectangle(out, (x, top), (x + tw, top + th + base), (0, 255, 0), -1)
    cv2.putText(out, text, (x, top + th), font, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)
  return out


def write_image_atomic(path: Path, bgr: np.ndarray) -> None:
  """Encodes by ``path``'s suffix and replaces ``path`` in one step."""
  ok, encoded = cv2.imencode(path.suffix, bgr)
  if not ok:
    raise ImageError(f"{path}: OpenCV cannot encode {path.suffix} images")
  atomic.write_bytes(path, encoded.tobytes())


def _annotated_path(out_dir: Path, source: Path, used: set[str]) -> Path:
  """out_dir/<source name>, made unique within the run; unknown suffixes
  become .png."""
  suffix = source.suffix.lower()
  if suffix not in ANNOTATED_SUFFIXES:
    suffix = ".png"
  name, n = f"{source.stem}{suffix}", 1
  while name in used:
    name, n = f"{source.stem}_{n}{suffix}", n + 1
  used.add(name)
  return out_dir / name


def predict_paths(paths: Iterable[str | Path], classifier: Classifier,
                  detector: str = "auto", out_dir: str | Path | None = None,
                  *, margin: float = 0.1) -> Iterator[dict[str, Any]]:
  """One JSON-ready record per file in ``paths``, in order.

  A file that cannot be read or processed gives {"path", "error"} and the
  others still run. With ``out_dir``, annotated copies are written there.
  """
  used: set[str] = set()
  if out_dir is not None:
    paths = list(paths)
    check_out_dir(out_dir, paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
  for path in map(Path, paths):
    try:
      image = load_image(path)
      results = recognize(image, classifier, detector, margin=margin)
      if out_dir is not None:
        write_image_atomic(_annotated_path(out_dir, path, used),
                           annotate(image, results))
    except (ImageError, OSError, ValueError, cv2.error) as e:
      message = str(e) if str(path) in str(e) else f"{path}: {e}"
      yield {"path": str(path), "error": message}
      continue
    yield {"path": str(path), "faces": [r.to_json() for r in results]}


def main(argv: Sequence[str] | None = None) -> int:
  """Runs `ferjax predict`; 0 unless the run dir is unusable or every image
  failed."""
  parser = argparse.ArgumentParser(
      prog="ferjax predict",
      description="Detect faces and classify their expressions.")
  parser.add_argument("--workdir", required=True, type=os.path.expanduser,
                      help="training run directory holding a checkpoint")
  parser.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                      type=os.path.expanduser,
                      help="image files, or directories searched for them")
  parser.add_argument("--detector", choices=DETECTORS, default="auto",
                      help="face detector (default: auto, MTCNN at two "
                      "resolutions)")
  parser.add_argument("--out", type=os.path.expanduser,
                      help="directory for annotated copies")
  args = parser.parse_args(argv)
  try:
    check_out_dir(args.out, args.images)
  except ValueError as e:
    print(f"ferjax predict: {e}", file=sys.stderr)
    return 2
  if args.out is not None:
    try:
      Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
      print(f"ferjax predict: --out {args.out}: {e.strerror or e}",
            file=sys.stderr)
      return 2
  try:
    classifier = load_classifier(args.workdir)
  except (FileNotFoundError, ValueError) as e:
    print(f"ferjax predict: {e}", file=sys.stderr)
    return 2
  return run(args.images, classifier, args.detector, args.out)


def run(images: Sequence[str], classifier: Classifier, detector: str = "auto",
        out_dir: str | Path | None = None) -> int:
  """Prints a JSON line per image file; 1 if none succeeded, else 0."""
  paths = expand_paths(images, skip=out_dir)
  if not paths:
    print(f"ferjax predict: no image files found in {' '.join(images)}",
          file=sys.stderr)
    return 1
  failures = 0
  for record in predict_paths(paths, classifier, detector, out_dir):
    failures += "error" in record
    print(json.dumps(record), flush=True)
  return 1 if failures == len(paths) else 0
