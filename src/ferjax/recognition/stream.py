"""Expressions in a stream of frames, with faces tracked from frame to frame.

``FaceStream`` is the stateful core of video recognition: feed it frames in
order (from a file, a camera or any source of RGB arrays) and it returns each
frame's faces with a stable ``track`` id and smoothed scores. The full
detector runs every ``detect_every`` frames; in between, the faces of the
previous frame are followed (MTCNN's last stages on boxes around them, or
the detector re-run inside a grown box), which costs a fraction of a
detection. A scene cut (a frame unlike the one before) ends every track and
runs the full detector at once. Every face of a frame is aligned and
classified in one batch.

``recognize_stream`` is the same as an iterator, and what ``ferjax predict``
runs on videos and cameras.
"""

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import cv2
import numpy as np

from ferjax.recognition.align import Face
from ferjax.recognition.classifier import FaceClassifier, FaceScores
from ferjax.recognition.pipeline import (Detector, FaceResult, as_rgb,
                                         face_results, get_detector,
                                         redetect_near)
from ferjax.recognition.tracking import Tracker
from ferjax.recognition.video import Frame

# Full detection every this many frames by default: on the shared 30 fps
# clip this keeps `ferjax predict` faster than the video plays on a 2-core
# CPU (benchmarks/README.md), and new faces are found within a third of a
# second.
DETECT_EVERY = 10

# Score smoothing window in frames by default (see ferjax.recognition.tracking).
SMOOTH = 5

# A scene cut: the mean absolute difference of consecutive frames' 64x36
# grey thumbnails (0-255) above this. On the shared clip its three cuts
# score 28-31 and every other frame at most 14.
CUT_THRESHOLD = 20.0
_THUMB = (64, 36)


@dataclasses.dataclass(frozen=True)
class FrameResult:
  """The faces of one frame: ``index`` in the stream, ``time`` in seconds
  (None when the source gives none) and whether the full detector ran."""

  index: int
  time: float | None
  faces: list[FaceResult]
  detected: bool

  def to_json(self) -> dict[str, Any]:
    """{"frame", "time", "faces"} in plain JSON types."""
    return {"frame": self.index,
            "time": None if self.time is None else round(self.time, 4),
            "faces": [f.to_json() for f in self.faces]}


def thumbnail(image: np.ndarray) -> np.ndarray:
  """The small grey float32 copy of an RGB frame that cuts are judged on."""
  grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  return cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA).astype(
      np.float32)


def _follow(detector: Detector, image: np.ndarray,
            faces: list[Face]) -> list[Face]:
  follow = getattr(detector, "follow", None)
  if follow is None:
    return redetect_near(detector, image, faces)
  return follow(image, faces)


class FaceStream:
  """Recognises expressions frame after frame, keeping track of faces.

  ``detector`` is a name from ``detectors.DETECTORS`` or any ``Detector``
  (one with a ``follow(image, faces)`` method is used between detections);
  ``detect_every`` >= 1 is how often the full detector runs; ``smooth`` is
  the score smoothing window in frames (0 turns it off); ``margin`` is the
  crop margin of ``pipeline.recognize``; ``cut_threshold`` is the
  thumbnail difference taken as a scene cut (None: never).
  """

  def __init__(self, classifier: FaceClassifier,
               detector: str | Detector = "auto", *, detect_every: int = DETECT_EVERY, smooth: float = SMOOTH,
               margin: float = 0.1,
               cut_threshold: float | None = CUT_THRESHOLD):
    if int(detect_every) != detect_every or detect_every < 1:
      raise ValueError(f"detect_every must be an integer >= 1, got "
                       f"{detect_every!r}")
    self.classifier = classifier
    self.detector = (get_detector(detector) if isinstance(detector, str)
                     else detector)
    self.detect_every = int(detect_every)
    self.margin = margin
    self.cut_threshold = cut_threshold
    self.tracker = Tracker(smooth=smooth)
    self._faces: list[Face] = []
    # Frames since the full detector last ran, as if it ran before frame 0.
    self._since_detection = self.detect_every - 1
    self._thumb: np.ndarray | None = None
    self._count = 0

  def process(self, image: np.ndarray, index: int | None = None,
              time: float | None = None) -> FrameResult:
    """The faces of the next frame ``image`` (RGB, see ``pipeline.as_rgb``).

    ``index`` defaults to the number of frames processed before.
    """
    image = as_rgb(image)
    index = self._count if index is None else index
    detect = self._since_detection + 1 >= self.detect_every
    self._count += 1
    if self.cut_threshold is not None:
      thumb = thumbnail(image)
      if (self._thumb is not None and self._thumb.shape == thumb.shape
          and np.abs(thumb - self._thumb).mean() > self.cut_threshold):
        self.tracker.end_all()
        detect = True
      self._thumb = thumb
    if detect:
      faces, self._since_detection = self.detector.detect(image), 0
    else:
      faces = _follow(self.detector, image, self._faces)
      self._since_detection += 1
    self._faces = faces
    scores = self.classifier.score_faces(image, faces, margin=self.margin)
    ids = self.tracker.update([f.box for f in faces])
    results = face_results(faces, self._smooth(ids, scores),
                           self.classifier.class_names, ids)
    return FrameResult(index, time, results, detect)

  def _smooth(self, ids: list[int], scores: FaceScores) -> FaceScores:
    """``scores`` folded into each track's average. An ensemble's members
    are smoothed alongside (smoothing is linear, so the smoothed mean is
    still the mean of the smoothed members)."""
    parts = [scores.probs, *(p for _, p in scores.members)]
    smoothed = np.split(
        self.tracker.smooth(ids, np.concatenate(parts, axis=1)), len(parts),
        axis=1)
    return FaceScores(smoothed[0], tuple(
        (name, p) for (name, _), p in zip(scores.members, smoothed[1:],
                                           strict=True)), scores.calibrated,
                      scores.member_calibrated)


def recognize_stream(frames: Iterable[np.ndarray | Frame],
                     classifier: FaceClassifier,
                     detector: str | Detector = "auto", *,
                     detect_every: int = DETECT_EVERY, smooth: float = SMOOTH,
                     margin: float = 0.1) -> Iterator[FrameResult]:
  """One ``FrameResult`` per frame of ``frames``, in order.

  ``frames`` are RGB arrays (indexed from 0, no time) or ``video.Frame``
  records such as ``video.read_frames`` yields; the other arguments are
  ``FaceStream``'s.
  """
  stream = FaceStream(classifier, detector, detect_every=detect_every,
                      smooth=smooth, margin=margin)
  for frame in frames:
    if isinstance(frame, Frame):
      yield stream.process(frame.image, frame.index, frame.time)
    else:
      yield stream.process(frame)
