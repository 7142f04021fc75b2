"""Frames in from video files and cameras, annotated video out, via OpenCV.

Reading yields ``Frame`` records (index in the source, time in seconds, RGB
pixels) and says what went wrong in one line naming the source: a file that
does not open, a codec OpenCV cannot decode, a camera that is not there, a
video without frames. Problems after the first frame (a frame whose size
differs from the first, a stream ending before the frame count its header
announced) are warnings, and the frames before them stand.

The annotated video is written to a hidden file beside its destination,
checked when it is closed (it must reopen with every frame written: a full
disk leaves a file without its index) and only then renamed into place, so a
file of that name is always complete and an earlier complete one is replaced
only by another. A run stopped by an error or Ctrl-C keeps its frames beside
the destination as ``NAME.partial.EXT``, never over ``NAME.EXT``.
"""

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

# What `ferjax predict` treats as video; anything OpenCV's FFmpeg backend
# reads works through the library calls.
VIDEO_SUFFIXES: tuple[str, ...] = (
    ".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".webm", ".wmv")

# FourCC codes OpenCV's bundled FFmpeg writes, by container.
_FOURCC = {".avi": "MJPG", ".mkv": "MJPG", ".mov": "mp4v", ".mp4": "mp4v",
           ".m4v": "mp4v"}

# What VideoWriter can write.
WRITABLE_SUFFIXES: tuple[str, ...] = tuple(sorted(_FOURCC))

# Frame rate written for sources that do not report one (most cameras).
DEFAULT_FPS = 30.0

Warn = Callable[[str], None]


class VideoError(Exception):
  """A video source or destination that cannot be used; the message says
  which and why."""


@dataclasses.dataclass(frozen=True)
class Frame:
  """One decoded frame: its index in the source, its time in seconds from
  the source's start, and uint8 RGB pixels (H, W, 3)."""

  index: int
  time: float
  image: np.ndarray


def is_video(path: str | Path) -> bool:
  """Whether ``path`` names a video by its suffix."""
  return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _quiet_opencv() -> None:
  # OpenCV and FFmpeg print their own messages for a missing camera or a bad
  # file; the errors and warnings here say it in one line instead. FFmpeg's
  # level is read when OpenCV first opens a video (-8: quiet); a level the
  # user set is kept.
  os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
  cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _ignore(_: str) -> None:
  pass


class VideoSource:
  """A video file or a camera, opened for reading.

  ``source`` is a path or a camera index. ``fps`` is the source's frame rate
  (``DEFAULT_FPS`` when it reports none) and ``frame_count`` the number of
  frames its header announces (0 for cameras or when unknown).
  """

  def __init__(self, source: str | Path | int):
    _quiet_opencv()
    self.is_camera = isinstance(source, int)
    self.name = f"camera {source}" if self.is_camera else str(source)
    if not self.is_camera:
      path = Path(source)
      if not path.exists():
        raise VideoError(f"{path}: no such file")
      if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
      if not path.is_file():  # FFmpeg would wait on a FIFO, read a device.
        raise VideoError(f"{path}: not a regular file (a FIFO or a device); "
                         "expected a video file")
      if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file (0 bytes), expected a video")
      self._capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    else:
      try:
        self._capture = cv2.VideoCapture(source)
      except cv2.error:  # An index beyond a C int.
        raise VideoError(f"{self.name}: no such camera (camera indices are "
                         "small numbers: 0 for the first)") from None
    if not self._capture.isOpened():
      self._capture.release()
      if self.is_camera:
        raise VideoError(f"{self.name}: cannot be opened (no such camera, or "
                         "it is in use)")
      raise VideoError(f"{self.name}: not a readable video (expected a "
                       "container and codec OpenCV's FFmpeg can decode, e.g. "
                       "H.264 in .mp4)")
    fps = self._capture.get(cv2.CAP_PROP_FPS)
    self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
    count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
    self.frame_count = (0 if self.is_camera or not math.isfinite(count)
                        else max(0, int(count)))

  def close(self) -> None:
    self._capture.release()

  def __enter__(self) -> "VideoSource":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def frames(self, *, start: float = 0.0, end: float | None = None,
             max_frames: int | None = None,
             warn: Warn = _ignore) -> Iterator[Frame]:
    """The frames from ``start`` to ``end`` seconds, at most ``max_frames``.

    File times are index / fps, so they do not depend on decoding speed;
    camera times are seconds since the first frame. Frames before ``start``
    are decoded and dropped (seeking is not frame-exact in every codec).
    A frame whose size differs from the first one is skipped with a warning.
    """
    first = None
    index = -1
    shape = None
    yielded = 0
    while max_frames is None or yielded < max_frames:
      ok = self._capture.grab()
      if not ok:
        break
      index += 1
      now = time.monotonic()
      if self.is_camera:
        first = now if first is None else first
        t = now - first
      else:
        t = index / self.fps
      if t < start and not self.is_camera:
        continue
      if end is not None and t >= end:
        break
      ok, bgr = self._capture.retrieve()
      if not ok or bgr is None:
        warn(f"{self.name}: frame {index} could not be decoded; skipped")
        continue
      if shape is None:
        shape = bgr.shape
      elif bgr.shape != shape:
        warn(f"{self.name}: frame {index} is {bgr.shape[1]}x{bgr.shape[0]}, "
             f"the video's frames are {shape[1]}x{shape[0]}; skipped")
        continue
      yielded += 1
      yield Frame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if index < 0:
      raise VideoError(f"{self.name}: no frame could be read (a video with no "
                       "frames, or a codec OpenCV cannot decode)")
    stopped_early = (max_frames is not None and yielded >= max_frames) or (
        end is not None and index >= 0 and index / self.fps >= end)
    if (not stopped_early and self.frame_count
        and index + 1 < self.frame_count):
      warn(f"{self.name}: stream ended after frame {index} of the "
           f"{self.frame_count} its header announces (truncated or corrupt "
           "file?)")


def read_frames(source: str | Path | int, *, start: float = 0.0,
                end: float | None = None, max_frames: int | None = None,
                warn: Warn = _ignore) -> Iterator[Frame]:
  """``VideoSource(source).frames(...)``, closing the source at the end."""
  with VideoSource(source) as video:
    yield from video.frames(start=start, end=end, max_frames=max_frames,
                            warn=warn)


def partial_path(path: str | Path) -> Path:
  """Where an interrupted write of ``path`` keeps its frames."""
  path = Path(path)
  return path.with_name(f"{path.stem}.partial{path.suffix}")


def _hidden_path(path: Path) -> Path:
  return path.with_name(f".{path.stem}.partial{path.suffix}")


def leftover_partials(folder: str | Path) -> list[Path]:
  """Hidden files of writes that never closed in ``folder`` (a process
  killed by SIGKILL, or one still writing)."""
  folder = Path(folder)
  if not folder.is_dir():
    return []
  return sorted(p for p in folder.glob(".*.partial.*")
                if p.is_file() and p.suffix.lower() in _FOURCC)


def _written_fault(path: Path, frames: int) -> str | None:
  """Why the closed file at ``path`` does not hold ``frames`` playable
  frames, or None. OpenCV's writer reports no write error, so the file is
  read back: a full disk leaves it cut short or without its index."""
  size = path.stat().st_size if path.is_file() else 0
  if size == 0:
    return "nothing was written"
  capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
  try:
    if not capture.isOpened():
      return f"the {size} bytes written do not open as a video"
    readable = 0
    while capture.grab():
      readable += 1
  finally:
    capture.release()
  if readable != frames:
    return f"it reads back {readable} of the {frames} frames written"
  return None


def _disk_note(folder: Path) -> str:
  try:
    stats = os.statvfs(folder)
  except OSError:
    return ""
  free = stats.f_bavail * stats.f_frsize
  return " (the disk is full)" if free < 1 << 20 else ""


class VideoWriter:
  """An annotated video at ``path``, ``fps`` frames a second, frames of one
  size (that of the first frame written).

  Frames go to a hidden file in the same folder. ``close()`` checks that it
  reopens with every frame written and renames it to ``path`` (replacing an
  earlier output only then), or deletes it and raises VideoError naming
  ``path``. ``close(complete=False)``, which leaving the ``with`` block on an
  exception or Ctrl-C calls, moves the frames written to
  ``partial_path(path)`` instead, beside ``path`` and never over it.
  """

  def __init__(self, path: str | Path, fps: float):
    self.path = Path(path)
    self.fps = fps
    suffix = self.path.suffix.lower()
    if suffix not in _FOURCC:
      raise VideoError(f"{self.path}: cannot write {suffix or 'suffix-less'} "
                       f"video; use one of {', '.join(sorted(_FOURCC))}")
    self._fourcc = cv2.VideoWriter_fourcc(*_FOURCC[suffix])
    self._partial = _hidden_path(self.path)
    self._writer: cv2.VideoWriter | None = None
    self.size: tuple[int, int] | None = None
    self.frames_written = 0

  def write(self, bgr: np.ndarray) -> None:
    """Appends one BGR frame; its size must be the first frame's."""
    size = (bgr.shape[1], bgr.shape[0])
    if self._writer is None:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._writer = cv2.VideoWriter(str(self._partial), self._fourcc,
                                     self.fps, size)
      if not self._writer.isOpened():
        self._writer = None
        self._partial.unlink(missing_ok=True)
        raise VideoError(f"{self.path}: OpenCV cannot write this video "
                         f"({size[0]}x{size[1]} at {self.fps:g} fps)")
      self.size = size
    elif size != self.size:
      raise VideoError(f"{self.path}: frame of {size[0]}x{size[1]}, the "
                       f"video is {self.size[0]}x{self.size[1]}")
    self._writer.write(np.ascontiguousarray(bgr))
    self.frames_written += 1

  def close(self, complete: bool = True) -> Path | None:
    """Finishes the file; returns where it went (None: no frames, or an
    incomplete file that does not play).

    Complete: checked, then moved to ``path``; a failed check deletes it
    and raises VideoError. Not complete: moved to ``partial_path(path)``.
    """
    if self._writer is None:
      return None
    self._writer.release()
    self._writer = None
    fault = _written_fault(self._partial, self.frames_written)
    if fault is not None:
      note = _disk_note(self.path.parent)  # Before the deletion frees it.
      self._partial.unlink(missing_ok=True)
      if complete:
        raise VideoError(f"{self.path}: not written: {fault}{note}; an "
                         "earlier file of that name is kept")
      return None
    destination = self.path if complete else partial_path(self.path)
    os.replace(self._partial, destination)
    return destination

  def __enter__(self) -> "VideoWriter":
    return self

  def __exit__(self, exc_type, *exc) -> None:
    self.close(complete=exc_type is None)
