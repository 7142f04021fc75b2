"""`ferjax predict`: expressions of the faces in image files, videos, cameras.

Prints one JSON object per image and line, {"path", "faces": [...]} or
{"path", "error"}, so that one bad file is reported and the rest still run;
with --out, also writes a copy of each image with boxes and labels drawn.
Videos and cameras give one line per frame, {"path", "frame", "time",
"faces"} with a track id per face (see ferjax.recognition.stream), and with
--out an annotated video of the same size and frame rate. Several --workdir
classify with their ensemble (the mean of their softmax), and each face
also lists every member's scores.

Huge photos are not refused: a 48-megapixel phone photo is a normal input.
Detection runs on downscaled copies (see ferjax.recognition.pipeline) and
the crops come from the full image; only what OpenCV itself will not decode
(over 2^30 pixels) is reported as unreadable.
"""

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferjax import atomic, finite_json
from ferjax.recognition.classifier import FaceClassifier
from ferjax.recognition.inputs import (ANNOTATED_SUFFIXES, check_out_dir,
                                       expand_paths)
from ferjax.recognition.pipeline import FaceResult, recognize
from ferjax.recognition.stream import DETECT_EVERY, SMOOTH, FaceStream
from ferjax.recognition.video import (WRITABLE_SUFFIXES, VideoError,
                                      VideoSource, VideoWriter, is_video)


# Seconds between a video's progress lines on stderr: alive, not chatty.
PROGRESS_EVERY = 5.0


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
    if r.track is not None:
      text = f"#{r.track} {text}"
    scale = max(0.4, w / 220)
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    # Above the box, else inside its top: always within the image (a face
    # at the image's edge keeps its label in sight).
    top = y - th - base if y - th - base >= 0 else y
    top = max(0, min(top, out.shape[0] - th - base))
    left = max(0, min(x, out.shape[1] - tw))
    cv2.rectangle(out, (left, top), (left + tw, top + th + base), (0, 255, 0),
                  -1)
    cv2.putText(out, text, (left, top + th), font, scale, (0, 0, 0),
                thickness, cv2.LINE_AA)
  return out


def write_image_atomic(path: Path, bgr: np.ndarray) -> None:
  """Encodes by ``path``'s suffix and replaces ``path`` in one step."""
  ok, encoded = cv2.imencode(path.suffix, bgr)
  if not ok:
    raise ImageError(f"{path}: OpenCV cannot encode {path.suffix} images")
  atomic.write_bytes(path, encoded.tobytes())


def _annotated_path(out_dir: Path, source: Path, used: set[str],
                    suffixes: Sequence[str] = ANNOTATED_SUFFIXES,
                    default: str = ".png") -> Path:
  """out_dir/<source name>, made unique within the run; suffixes not in
  ``suffixes`` become ``default``."""
  suffix = source.suffix.lower()
  if suffix not in suffixes:
    suffix = default
  name, n = f"{source.stem}{suffix}", 1
  while name in used:
    name, n = f"{source.stem}_{n}{suffix}", n + 1
  used.add(name)
  return out_dir / name


def predict_paths(paths: Iterable[str | Path], classifier: FaceClassifier,
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


def _warn(message: str) -> None:
  print(f"ferjax predict: warning: {message}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
  print(f"ferjax predict: {message}", file=sys.stderr, flush=True)


def _open_window(title: str) -> str | None:
  """The title of a new OpenCV window for --show, or None (with a warning)
  where no display or no GUI support exists."""
  if sys.platform.startswith("linux") and not (
      os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    _warn("--show: no display (DISPLAY is not set); running headless")
    return None
  try:
    cv2.namedWindow(title, cv2.WINDOW_NORMAL)
  except cv2.error:
    _warn("--show: this OpenCV has no GUI support (opencv-python-headless); "
          "running headless")
    return None
  return title


def predict_video(source: str | Path | int, classifier: FaceClassifier,
                  detector: str = "auto", out_dir: str | Path | None = None,
                  *, start: float = 0.0, end: float | None = None,
                  max_frames: int | None = None,
                  detect_every: int = DETECT_EVERY, smooth: float = SMOOTH,
                  show: bool = False, used: set[str] | None = None,
                  warn=_warn, progress: Callable[[str], None] = _note,
                  progress_every: float = PROGRESS_EVERY
                  ) -> Iterator[dict[str, Any]]:
  """One JSON-ready record per frame of a video file or camera index.

  A source that cannot be read gives one {"path", "error"} record (after
  the frames read before the problem). With ``out_dir`` the annotated video
  is written there, named after the source (camera N: cameraN.mp4).
  ``progress`` gets the frames done and frames/s every ``progress_every``
  seconds and once at the end (stderr: stdout is the records).
  """
  name = f"camera {source}" if isinstance(source, int) else str(source)
  try:
    video = VideoSource(source)
  except VideoError as e:
    yield {"path": name, "error": str(e)}
    return
  writer, window = None, None
  with contextlib.ExitStack() as stack:
    stack.enter_context(video)
    if out_dir is not None:
      stem = Path(f"camera{source}.mp4" if isinstance(source, int) else source)
      path = _annotated_path(Path(out_dir), stem,
                             set() if used is None else used,
                             WRITABLE_SUFFIXES, ".mp4")
      if not isinstance(source, int) and path.resolve() == stem.resolve():
        yield {"path": name, "error": f"{name}: --out {out_dir} would "
               "overwrite this input with its annotated copy"}
        return
      writer = stack.enter_context(VideoWriter(path, video.fps))
    if show:
      window = _open_window(f"ferjax predict: {name}")
      if window is not None:
        stack.callback(cv2.destroyWindow, window)
    stream = FaceStream(classifier, detector, detect_every=detect_every,
                        smooth=smooth)
    frames = 0
    whole = start == 0 and end is None and max_frames is None
    of = f"/{video.frame_count}" if whole and video.frame_count else ""
    began = last = time.monotonic()
    try:
      for frame in video.frames(start=start, end=end, max_frames=max_frames,
                                warn=warn):
        result = stream.process(frame.image, frame.index, frame.time)
        if writer is not None or window is not None:
          annotated = annotate(frame.image, result.faces)
          if writer is not None:
            writer.write(annotated)
          if window is not None:
            cv2.imshow(window, annotated)
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):  # q or Esc quits
              break
        frames += 1
        now = time.monotonic()
        if now - last >= progress_every:
          progress(f"{name}: {frames}{of} frames, "
                   f"{frames / (now - began):.1f} frames/s")
          last = now
        yield {"path": name, **result.to_json()}
    except (VideoError, OSError, ValueError, cv2.error) as e:
      message = str(e) if name in str(e) else f"{name}: {e}"
      yield {"path": name, "error": message}
      return
    if frames:
      seconds = time.monotonic() - began
      progress(f"{name}: {frames} frames in {seconds:.1f} s "
               f"({frames / seconds if seconds else 0:.1f} frames/s)")
    else:
      yield {"path": name, "error": f"{name}: no frames between --start "
             f"{start:g} s and --end {end if end is not None else 'end'}"}


def run(images: Sequence[str | int], classifier: FaceClassifier,
        detector: str = "auto", out_dir: str | Path | None = None,
        **video_options: Any) -> int:
  """Prints a JSON line per image file and per video frame, in the order of
  ``images`` (camera indices are ints); 1 if no input succeeded, else 0.

  ``video_options`` are ``predict_video``'s keyword arguments.
  """
  groups: list[list[Path] | str | int] = []
  for item in images:
    if isinstance(item, int) or is_video(item):
      groups.append(item)
    elif groups and isinstance(groups[-1], list):
      groups[-1].append(item)
    else:
      groups.append([item])
  inputs = failures = 0
  used: set[str] = set()
  for group in groups:
    if isinstance(group, list):
      paths = expand_paths(group, skip=out_dir)
      if not paths:
        print(f"ferjax predict: no image files found in "
              f"{' '.join(map(str, group))}", file=sys.stderr)
        inputs, failures = inputs + 1, failures + 1
        continue
      records = predict_paths(paths, classifier, detector, out_dir)
      for record in records:
        inputs += 1
        failures += "error" in record
        print(finite_json.dumps(record), flush=True)
    else:
      inputs += 1
      failed = False
      for record in predict_video(group, classifier, detector, out_dir,
                                  used=used, **video_options):
        failed |= "error" in record
        print(finite_json.dumps(record), flush=True)
      failures += failed
  return 1 if failures == inputs else 0
