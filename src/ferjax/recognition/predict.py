"""`ferjax predict`: expressions of the faces in image files, videos, cameras.

Yields one JSON-ready record per image, {"path", "faces": [...]} or
{"path", "error"}, so that one bad file is reported and the rest still run
(the command prints them, one a line; warnings and progress go to the
callbacks it passes, to the log otherwise);
with --out, also writes a copy of each image with boxes and labels drawn.
Videos and cameras give one line per frame, {"path", "frame", "time",
"faces"} with a track id per face (see ferjax.recognition.stream), and with
--out an annotated video of the same size and frame rate. Several --workdir
classify with their ensemble (the mean of their softmax), and each face
also lists every member's scores.

Huge photos are not refused: a 48-megapixel phone photo is a normal input.
Detection runs on downscaled copies (see ferjax.recognition.pipeline) and
the crops come from the full image. Inputs are untrusted: only regular files
are read (a FIFO or /dev/zero is an error, never a hang), and an image whose
header declares more than ``MAX_PIXELS`` pixels (``--max-pixels``) is
refused before it is decoded.
"""

import contextlib
import dataclasses
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferjax import atomic
from ferjax.data.image_header import image_size
from ferjax.recognition.classifier import FaceClassifier
from ferjax.recognition.inputs import (ANNOTATED_SUFFIXES, IMAGE_SUFFIXES,
                                       check_out_dir, expand_paths)
from ferjax.recognition import overlay
from ferjax.landmarks import topology
from ferjax.recognition.align import Face
from ferjax.recognition.mesh import Mesher
from ferjax.recognition.pipeline import FaceResult, recognize
from ferjax.recognition.stream import DETECT_EVERY, SMOOTH, FaceStream
from ferjax.recognition.video import (VIDEO_SUFFIXES, WRITABLE_SUFFIXES,
                                      VideoError, VideoSource, VideoWriter,
                                      is_video)


# The most pixels an input image may declare (``--max-pixels``): four
# 48-megapixel phone photos; 600 MB as 8-bit RGB. Like Pillow's
# MAX_IMAGE_PIXELS, it stops a small file from taking gigabytes to decode.
MAX_PIXELS = 200_000_000

# Seconds between a video's progress lines on stderr: alive, not chatty.
PROGRESS_EVERY = 5.0

_log = logging.getLogger(__name__)


class ImageError(Exception):
  """An input file that cannot be used as an image; the message says why."""


def _is_truncated_jpeg(data: bytes) -> bool:
  # OpenCV decodes a cut-off JPEG with a grey bottom and only a warning. A
  # whole one has an end-of-image marker after its last scan (an EXIF
  # thumbnail's marker comes before the scans; maker data may follow it).
  return (data[:2] == b"\xff\xd8"
          and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"))


def _read_regular_file(path: Path, max_bytes: int) -> bytes:
  """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

  Opened without blocking and checked before reading, so that a FIFO (which
  would wait for a writer forever) or a device such as /dev/zero (which
  never ends) is refused instead of read.
  """
  try:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
  except FileNotFoundError as e:
    raise ImageError(f"{path}: no such file") from e
  except OSError as e:
    raise ImageError(f"{path}: cannot read: {e.strerror or e}") from e
  try:
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
      raise ImageError(f"{path}: is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
      kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket"
              if stat.S_ISSOCK(info.st_mode) else "a device")
      raise ImageError(f"{path}: {kind}, not a regular file; expected an "
                       "image file")
    if info.st_size > max_bytes:
      raise ImageError(f"{path}: {info.st_size} bytes, more than an image of "
                       f"the pixel limit can take ({max_bytes})")
    with open(fd, "rb", closefd=False) as f:
      return f.read()
  except OSError as e:
    raise ImageError(f"{path}: cannot read: {e.strerror or e}") from e
  finally:
    os.close(fd)


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
  """uint8 RGB (H, W, 3) of an image file, or ImageError saying why not.

  Grey, 16-bit and RGBA files are converted (alpha dropped, high byte of 16
  bits kept) and EXIF orientation is applied, as cv2.IMREAD_COLOR does.
  Only regular files are read, and only images whose header declares at
  most ``max_pixels`` pixels are decoded.
  """
  path = Path(path)
  # 8 bytes a pixel (16-bit RGBA, uncompressed) and room for metadata.
  data = _read_regular_file(path, 8 * max_pixels + (16 << 20))
  if not data:
    raise ImageError(f"{path}: empty file (0 bytes), expected an image")
  size = image_size(data)
  if size is None:
    raise ImageError(f"{path}: not a readable image (expected JPEG, PNG, BMP, "
                     "GIF, TIFF or WebP)")
  if size[0] * size[1] > max_pixels:
    raise ImageError(
        f"{path}: declares {size[0]}x{size[1]} pixels, more than the limit of "
        f"{max_pixels} (--max-pixels; a guard against decompression bombs)")
  if _is_truncated_jpeg(data):
    raise ImageError(f"{path}: truncated JPEG (no end-of-image marker after "
                     "the last scan)")
  bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if bgr is None:
    raise ImageError(
        f"{path}: not a readable image (expected JPEG, PNG, BMP, GIF, TIFF "
        "or WebP that OpenCV can decode)")
  return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def annotate(image: np.ndarray, results: Sequence[FaceResult],
             heat: np.ndarray | None = None) -> np.ndarray:
  """A BGR copy of RGB ``image`` with each face's box, landmarks, label and
  top score drawn; text is scaled to its face so neighbours stay legible.
  ``heat`` (``overlay.face_heat``) is blended in under the boxes; faces with
  a mesh (the landmark stage) get its contours."""
  out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  if heat is not None:
    out = overlay.blend(out, heat)
  line = max(1, round(max(image.shape[:2]) / 600))
  font = cv2.FONT_HERSHEY_SIMPLEX
  for r in results:
    x, y, w, h = (round(v) for v in r.box)
    cv2.rectangle(out, (x, y), (x + w, y + h), (0, 255, 0), line)
    if r.mesh is not None:
      xy = np.round(r.mesh.points[:, :2]).astype(np.int32)
      cv2.polylines(out, [xy[list(c)] for c in topology.CONTOURS], False,
                    (255, 255, 0), max(1, line // 2), cv2.LINE_AA)
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


def with_meshes(image: np.ndarray, results: Sequence[FaceResult],
                mesher: Mesher | None) -> list[FaceResult]:
  """``results`` with their FaceMesh meshes (unchanged without a mesher)."""
  if mesher is None or not results:
    return list(results)
  meshes = mesher.meshes(image, [Face(r.box, r.detection_score, r.landmarks)
                                 for r in results])
  return [dataclasses.replace(r, mesh=m) for r, m in zip(results, meshes)]


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
                  *, margin: float = 0.1,
                  max_pixels: int = MAX_PIXELS,
                  explain: bool = False,
                  mesher: Mesher | None = None) -> Iterator[dict[str, Any]]:
  """One JSON-ready record per file in ``paths``, in order.

  A file that cannot be read or processed gives {"path", "error"} and the
  others still run. With ``out_dir``, annotated copies are written there,
  with ``explain`` each face's saliency map overlaid. With ``mesher`` each
  face also gets its 468 FaceMesh points ("mesh").
  """
  used: set[str] = set()
  if out_dir is not None:
    paths = list(paths)
    check_out_dir(out_dir, paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
  for path in map(Path, paths):
    try:
      image = load_image(path, max_pixels)
      results = recognize(image, classifier, detector, margin=margin)
      results = with_meshes(image, results, mesher)
      if out_dir is not None:
        heat = (overlay.face_heat(image, results, classifier, margin=margin)
                if explain else None)
        write_image_atomic(_annotated_path(out_dir, path, used),
                           annotate(image, results, heat))
    except (ImageError, OSError, ValueError, cv2.error) as e:
      message = str(e) if str(path) in str(e) else f"{path}: {e}"
      yield {"path": str(path), "error": message}
      continue
    yield {"path": str(path), "faces": [r.to_json() for r in results]}


def _open_window(title: str, warn: Callable[[str], None]) -> str | None:
  """The title of a new OpenCV window for --show, or None (with a warning)
  where no display or no GUI support exists."""
  if sys.platform.startswith("linux") and not (
      os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    warn("--show: no display (DISPLAY is not set); running headless")
    return None
  try:
    cv2.namedWindow(title, cv2.WINDOW_NORMAL)
  except cv2.error:
    warn("--show: this OpenCV has no GUI support (opencv-python-headless); "
          "running headless")
    return None
  return title


def _close_writer(writer: VideoWriter | None, complete: bool, warn) -> None:
  """Closes ``writer``; an incomplete video is kept beside, with a warning."""
  if writer is None:
    return
  kept = writer.close(complete)
  if kept is not None and not complete:
    warn(f"{writer.path}: stopped early; its first {writer.frames_written} "
         f"frames are in {kept}")


def predict_video(source: str | Path | int, classifier: FaceClassifier,
                  detector: str = "auto", out_dir: str | Path | None = None,
                  *, start: float = 0.0, end: float | None = None,
                  max_frames: int | None = None,
                  detect_every: int = DETECT_EVERY, smooth: float = SMOOTH,
                  show: bool = False, used: set[str] | None = None,
                  warn: Callable[[str], None] = _log.warning,
                  progress: Callable[[str], None] = _log.info,
                  progress_every: float = PROGRESS_EVERY,
                  explain: bool = False,
                  mesher: Mesher | None = None) -> Iterator[dict[str, Any]]:
  """One JSON-ready record per frame of a video file or camera index.

  A source that cannot be read gives one {"path", "error"} record (after
  the frames read before the problem). With ``out_dir`` the annotated video
  is written there, named after the source (camera N: cameraN.mp4); one
  that cannot be written completely raises VideoError (see VideoWriter).
  ``progress`` gets the frames done and frames/s every ``progress_every``
  seconds and once at the end (stderr: stdout is the records). With
  ``explain`` the annotated frames show each face's saliency map; with
  ``mesher`` each face gets its FaceMesh points (one batch per frame).
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
      window = _open_window(f"ferjax predict: {name}", warn)
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
        if mesher is not None:
          result = dataclasses.replace(result, faces=with_meshes(
              frame.image, result.faces, mesher))
        if writer is not None or window is not None:
          heat = (overlay.face_heat(frame.image, result.faces, classifier)
                  if explain else None)
          annotated = annotate(frame.image, result.faces, heat)
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
    except KeyboardInterrupt:
      # Ctrl-C is how a camera recording ends; a file's video stops short.
      _close_writer(writer, isinstance(source, int), warn)
      raise
    except (VideoError, OSError, ValueError, cv2.error) as e:
      _close_writer(writer, False, warn)
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


def _with_folders_scanned(items: Sequence[str | int],
                          out_dir: str | Path | None) -> list[str | Path | int]:
  """``items`` with each directory replaced by its image and video files
  (a directory without any stays, to be reported)."""
  found: list[str | Path | int] = []
  for item in items:
    if isinstance(item, int) or not Path(item).is_dir():
      found.append(item)
      continue
    found += expand_paths([item], skip=out_dir,
                          suffixes=IMAGE_SUFFIXES + VIDEO_SUFFIXES) or [item]
  return found


@dataclasses.dataclass
class Tally:
  """What ``predict`` has done so far: inputs (an image file, a video, a
  camera, a folder without images), those that failed, and whether an
  annotated video could not be written."""

  inputs: int = 0
  failures: int = 0
  unwritten: bool = False

  @property
  def status(self) -> int:
    """1 if no input succeeded or an annotated video is missing, else 0."""
    return 1 if self.failures == self.inputs or self.unwritten else 0


def predict(images: Sequence[str | int], classifier: FaceClassifier,
            detector: str = "auto", out_dir: str | Path | None = None, *,
            tally: Tally | None = None, max_pixels: int = MAX_PIXELS,
            explain: bool = False, landmarks: bool = False,
            note: Callable[[str], None] = _log.warning,
            **video_options: Any) -> Iterator[dict[str, Any]]:
  """A record per image file and per video frame, in the order of
  ``images`` (camera indices are ints); ``tally`` counts the inputs and
  failures as they go.

  ``video_options`` are ``predict_video``'s keyword arguments; ``explain``
  overlays saliency maps on the annotated images and videos; ``landmarks``
  adds each face's FaceMesh points to the records and its contours to the
  annotated copies; ``note`` hears of a folder without images or videos.
  """
  tally = Tally() if tally is None else tally
  mesher = Mesher() if landmarks else None
  groups: list[list[Path] | str | int] = []
  for item in _with_folders_scanned(images, out_dir):
    if isinstance(item, int) or is_video(item):
      groups.append(item)
    elif groups and isinstance(groups[-1], list):
      groups[-1].append(item)
    else:
      groups.append([item])
  used: set[str] = set()
  for group in groups:
    if isinstance(group, list):
      paths = expand_paths(group, skip=out_dir)
      if not paths:
        note(f"no image or video files found in {' '.join(map(str, group))}")
        tally.inputs, tally.failures = tally.inputs + 1, tally.failures + 1
        continue
      for record in predict_paths(paths, classifier, detector, out_dir,
                                  max_pixels=max_pixels, explain=explain,
                                  mesher=mesher):
        tally.inputs += 1
        tally.failures += "error" in record
        yield record
    else:
      tally.inputs += 1
      failed = False
      try:
        for record in predict_video(group, classifier, detector, out_dir,
                                    used=used, explain=explain,
                                    mesher=mesher, **video_options):
          failed |= "error" in record
          yield record
      except VideoError as e:  # The annotated video could not be written.
        name = f"camera {group}" if isinstance(group, int) else str(group)
        failed = tally.unwritten = True
        yield {"path": name, "error": str(e)}
      finally:
        tally.failures += failed
