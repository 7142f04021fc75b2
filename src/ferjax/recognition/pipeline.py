"""Photo in, expressions out: detection, alignment and classification.

Images are numpy arrays in RGB order (grey, RGBA and 16-bit are accepted and
converted), so the same call serves files, video frames and tests.

Detectors run on downscaled copies (longer side at most 1024 pixels): that
bounds the time and memory huge photos cost, and faces small enough to be
lost there are too small to classify. Crops come from the full image.

The default, 'auto', is MTCNN run at two resolutions, longer side 640 and
1024, with the faces merged; 'auto' and 'mtcnn' report faces MTCNN scores at
least ``detectors.MIN_SCORE`` (the original reports from 0.8). On the shared
photos, as they are, mirrored, rotated by 12 degrees either way and
recompressed, MTCNN at any single resolution from 480 to 1024 pixels or at
full size missed the Santa face in at least one variant (except at 640),
while the union missed no face and added no false one. 1024 also finds
smaller faces than 640 alone.
"""

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from ferjax.recognition.align import Face
from ferjax.recognition.classifier import FaceClassifier, FaceScores
from ferjax.recognition.detectors import DETECTORS
from ferjax.recognition.mesh import Mesh

# Two detections overlapping more than this are one face.
MERGE_IOU = 0.3


class Detector(Protocol):
  """Anything that finds faces in a uint8 RGB (H, W, 3) image."""

  def detect(self, image: np.ndarray) -> list[Face]:
    ...


def iou(a: Sequence[float], b: Sequence[float]) -> float:
  """Intersection over union of two (x, y, w, h) boxes."""
  ax, ay, aw, ah = a
  bx, by, bw, bh = b
  iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
  ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
  inter = iw * ih
  union = aw * ah + bw * bh - inter
  return inter / union if union > 0 else 0.0


def merge_faces(faces: Sequence[Face]) -> list[Face]:
  """Greedy NMS over faces: the best-scored (then largest) face of each
  overlapping group survives."""
  ranked = sorted(faces, key=lambda f: (-(f.score or 0.0),
                                        -f.box[2] * f.box[3]))
  kept: list[Face] = []
  for face in ranked:
    if all(iou(face.box, k.box) <= MERGE_IOU for k in kept):
      kept.append(face)
  return kept


def rescale_face(face: Face, fx: float, fy: float) -> Face:
  """``face`` with x multiplied by ``fx`` and y by ``fy``."""
  landmarks = None
  if face.landmarks is not None:
    landmarks = {k: (x * fx, y * fy) for k, (x, y) in face.landmarks.items()}
  x, y, w, h = face.box
  return Face((x * fx, y * fy, w * fx, h * fy), face.score, landmarks)


@dataclasses.dataclass(frozen=True)
class MultiResolution:
  """Runs ``detector`` on copies downscaled to each of ``sides`` (never
  upscaled) and merges what they find, in full-image coordinates.

  A copy r times smaller than the largest reports only faces of at least
  r * ``min_face`` of its pixels: smaller ones the largest copy sees with r
  times more pixels, and it alone decides on them. Detectors err most on
  faces near their smallest size: MTCNN (the original too) scores a dark
  patch of a suit at 18-23 pixels 0.94-0.96, as high as real faces, and
  rejects it with more pixels in most images; a union of copies would keep
  every copy's errors (benchmarks/README.md, detection.py). Faces scored
  under ``min_score`` are not reported (faces without a score are).
  """

  detector: Detector
  sides: tuple[int, ...]
  min_face: float = 0.0
  min_score: float = 0.0

  def detect(self, image: np.ndarray) -> list[Face]:
    longest = max(image.shape[:2])
    largest = min(longest, max(self.sides))
    faces, done = [], set()
    for side in self.sides:
      scale = min(1.0, side / longest)
      size = (max(1, round(image.shape[1] * scale)),
              max(1, round(image.shape[0] * scale)))
      if size in done:
        continue
      done.add(size)
      small = image if scale == 1.0 else cv2.resize(
          image, size, interpolation=cv2.INTER_AREA)
      fx, fy = image.shape[1] / size[0], image.shape[0] / size[1]
      ratio = largest / max(size)
      smallest = self.min_face * ratio if ratio > 1 else 0.0
      faces += [rescale_face(f, fx, fy) for f in self.detector.detect(small)
                if max(f.box[2:]) >= smallest
                and (f.score is None or f.score >= self.min_score)]
    return merge_faces(faces)

  def follow(self, image: np.ndarray, faces: Sequence[Face]) -> list[Face]:
    """``faces`` of the previous frame, found again in ``image``.

    Uses the detector's own ``follow`` where it has one (MTCNN's last
    stage), else ``redetect_near``; on the copy of the largest side, where
    faces have the most pixels. ``min_score`` does not apply: a face once
    detected stays while its detector's own threshold keeps it.
    """
    scale = min(1.0, max(self.sides) / max(image.shape[:2]))
    size = (max(1, round(image.shape[1] * scale)),
            max(1, round(image.shape[0] * scale)))
    small = image if scale == 1.0 else cv2.resize(
        image, size, interpolation=cv2.INTER_AREA)
    fx, fy = image.shape[1] / size[0], image.shape[0] / size[1]
    previous = [rescale_face(f, 1 / fx, 1 / fy) for f in faces]
    follow = getattr(self.detector, "follow", None)
    found = (follow(small, previous) if follow is not None
             else redetect_near(self.detector, small, previous))
    return merge_faces([rescale_face(f, fx, fy) for f in found])


def redetect_near(detector: Detector, image: np.ndarray, faces: Sequence[Face],
                  *, grow: float = 0.5) -> list[Face]:
  """For each of ``faces``, the detection overlapping it most inside its box
  grown by ``grow`` of its size on every side; faces not found are dropped."""
  height, width = image.shape[:2]
  found = []
  for face in faces:
    x, y, w, h = face.box
    x0, y0 = max(0, int(x - grow * w)), max(0, int(y - grow * h))
    x1 = min(width, int(math.ceil(x + w + grow * w)))
    y1 = min(height, int(math.ceil(y + h + grow * h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
      continue
    near = [shift_face(f, x0, y0)
            for f in detector.detect(np.ascontiguousarray(image[y0:y1, x0:x1]))]
    if near:
      best = max(near, key=lambda f: iou(f.box, face.box))
      if iou(best.box, face.box) > 0:
        found.append(best)
  return found


def shift_face(face: Face, dx: float, dy: float) -> Face:
  """``face`` moved by (dx, dy) pixels."""
  landmarks = None
  if face.landmarks is not None:
    landmarks = {k: (x + dx, y + dy) for k, (x, y) in face.landmarks.items()}
  x, y, w, h = face.box
  return Face((x + dx, y + dy, w, h), face.score, landmarks)


@functools.cache
def _base_detector(build: Any) -> Detector:
  # One of each kind per process, MTCNN shared by 'auto' and 'mtcnn': it
  # loads weights and compiles its nets.
  return build()


def get_detector(name: str) -> MultiResolution:
  """The named detector from ``detectors.DETECTORS``."""
  if name not in DETECTORS:
    raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, "
                     f"got {name!r}")
  spec = DETECTORS[name]
  return MultiResolution(_base_detector(spec.build), spec.sides,
                         spec.min_face, spec.min_score)


def as_rgb(image: np.ndarray) -> np.ndarray:
  """uint8 RGB (H, W, 3) from uint8 or uint16 grey, grey+alpha, RGB or RGBA.

  Alpha is dropped and 16 bits keep their high byte, as cv2.imread does.
  """
  image = np.asarray(image)
  if image.dtype == np.uint16:
    image = (image >> 8).astype(np.uint8)
  if image.dtype != np.uint8:
    raise ValueError(f"image must be uint8 or uint16, got {image.dtype}")
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
    raise ValueError(f"image must be (H, W) or (H, W, 1|2|3|4), got "
                     f"{image.shape}")
  if min(image.shape[:2]) < 1:
    raise ValueError(f"image is empty: shape {image.shape}")
  if image.shape[2] <= 2:
    return np.repeat(image[..., :1], 3, axis=2)
  return np.ascontiguousarray(image[..., :3])


@dataclasses.dataclass(frozen=True)
class FaceResult:
  """One recognised face: where it is and what expression it shows.

  With an ensemble, ``scores`` are the members' mean and ``members`` holds
  each member's (name, scores).
  """

  box: tuple[float, float, float, float]
  landmarks: Mapping[str, tuple[float, float]] | None
  label: str
  scores: Mapping[str, float]
  detection_score: float | None = None
  track: int | None = None
  members: tuple[tuple[str, Mapping[str, float]], ...] = ()
  # Scores are softmax(logits / T) (calibrate): for an ensemble True, False
  # or "partial", and each member's own in ``member_calibrated``.
  calibrated: bool | str = False
  member_calibrated: tuple[bool, ...] = ()
  mesh: Mesh | None = None  # From the landmark stage (predict --landmarks).

  def to_json(self) -> dict[str, Any]:
    """Plain JSON types: integer box, rounded landmarks and scores; the
    track id only for faces from a stream; for an ensemble, "members": each
    member's {"workdir", "label", "scores", "calibrated"}; "calibrated":
    whether the scores are temperature-scaled (an ensemble's: true if every
    member's are, "partial" if some are). "precise" holds the box and
    landmarks the crop was cut from, unrounded: a half-pixel rounding moves
    the scores by up to 0.04, and even 1e-4 pixels can change a crop pixel by
    one grey level (OpenCV warps in 1/32 pixel steps) and a score by 7e-4,
    so an exported model fed rounded values would not reproduce them.
    "mesh" only from the landmark stage."""
    landmarks = precise = None
    if self.landmarks is not None:
      landmarks = {k: [round(x, 1), round(y, 1)]
                   for k, (x, y) in self.landmarks.items()}
      precise = {k: [float(x), float(y)]
                 for k, (x, y) in self.landmarks.items()}
    record = {"box": [round(v) for v in self.box], "landmarks": landmarks,
              "label": self.label, "scores": _rounded(self.scores),
              "calibrated": self.calibrated,
              "precise": {"box": [float(v) for v in self.box],
                          "landmarks": precise}}
    if self.track is not None:
      record["track"] = self.track
    if self.members:
      record["members"] = [
          {"workdir": name, "label": max(scores, key=scores.get),
           "scores": _rounded(scores), "calibrated": calibrated}
          for (name, scores), calibrated in zip(
              self.members, self.member_calibrated, strict=True)]
    if self.mesh is not None:
      record["mesh"] = self.mesh.to_json()
    return record


def _rounded(scores: Mapping[str, float]) -> dict[str, float]:
  return {k: round(v, 4) for k, v in scores.items()}


def face_results(faces: Sequence[Face], scores: FaceScores,
                 class_names: Sequence[str],
                 tracks: Sequence[int | None] | None = None
                 ) -> list[FaceResult]:
  """One FaceResult per face: its top class, its scores and, for an
  ensemble, each member's scores."""
  def named(p: np.ndarray) -> dict[str, float]:
    return dict(zip(class_names, map(float, p), strict=True))

  tracks = [None] * len(faces) if tracks is None else tracks
  return [FaceResult(face.box, face.landmarks,
                     class_names[int(np.argmax(scores.probs[i]))],
                     named(scores.probs[i]), face.score, track,
                     tuple((name, named(p[i])) for name, p in scores.members),
                     scores.calibrated, scores.member_calibrated)
          for i, (face, track) in enumerate(zip(faces, tracks, strict=True))]


def recognize(image: np.ndarray, classifier: FaceClassifier,
              detector: str | Detector = "auto", *,
              margin: float = 0.1) -> list[FaceResult]:
  """Faces in ``image`` (RGB, see ``as_rgb``) with their expressions.

  ``classifier`` is a ``Classifier`` or an ``Ensemble``; ``detector`` is a
  name from ``detectors.DETECTORS`` or any ``Detector``; ``margin`` is the fraction of
  the face added on every side of its crop. An image without faces gives an
  empty list.
  """
  image = as_rgb(image)
  if isinstance(detector, str):
    detector = get_detector(detector)
  faces = detector.detect(image)
  return face_results(faces, classifier.score_faces(image, faces,
                                                    margin=margin),
                      classifier.class_names)
