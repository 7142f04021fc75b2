"""Stable face identities across video frames, and smoothed scores per face.

Association is greedy on box overlap: every (track, detection) pair is ranked
by IoU and the best pairs are taken first, each track and detection at most
once, as long as the IoU exceeds ``min_iou``. A detection left over starts a
new track; a track unmatched for more than ``max_missed`` frames ends, so a
face that leaves and comes back gets a new id. Plain numpy: a frame has a
handful of faces, and the cost is negligible beside detection.

Scores are smoothed per track by an exponential moving average over about
``window`` frames (``alpha = 2 / (window + 1)``, the usual span convention):
``s_t = alpha * p_t + (1 - alpha) * s_{t-1}``, starting from the track's first
scores. ``window`` 0 or 1 turns smoothing off.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

# Overlap below which a detection is not the same face as a track's box.
MIN_IOU = 0.3


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """IoU of every (x, y, w, h) box of ``a`` (N, 4) with every one of ``b``
  (M, 4), as (N, M)."""
  a = np.asarray(a, np.float64).reshape(-1, 4)
  b = np.asarray(b, np.float64).reshape(-1, 4)
  ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
  bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
  iw = np.clip(np.minimum(ax2[:, None], bx2) - np.maximum(a[:, None, 0],
                                                          b[:, 0]), 0, None)
  ih = np.clip(np.minimum(ay2[:, None], by2) - np.maximum(a[:, None, 1],
                                                          b[:, 1]), 0, None)
  inter = iw * ih
  union = (a[:, 2] * a[:, 3])[:, None] + b[:, 2] * b[:, 3] - inter
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(union > 0, inter / union, 0.0)


def match(previous: np.ndarray, current: np.ndarray,
          min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
  """Greedy one-to-one (previous index, current index) pairs by IoU.

  Highest overlaps first; ties go to the lower indices, so the result does
  not depend on anything but the boxes.
  """
  overlaps = iou_matrix(previous, current)
  if not overlaps.size:
    return []
  order = np.argsort(-overlaps, axis=None, kind="stable")
  used_prev, used_cur, pairs = set(), set(), []
  for flat in order:
    i, j = divmod(int(flat), overlaps.shape[1])
    if overlaps[i, j] <= min_iou:
      break
    if i in used_prev or j in used_cur:
      continue
    used_prev.add(i)
    used_cur.add(j)
    pairs.append((i, j))
  return sorted(pairs, key=lambda p: p[1])


def smoothing_alpha(window: float) -> float:
  """The EMA weight of the newest scores for a ``window`` of frames."""
  if window < 0:
    raise ValueError(f"smoothing window must be >= 0 frames, got {window}")
  return 1.0 if window <= 1 else 2.0 / (window + 1.0)


@dataclasses.dataclass
class Track:
  """One face followed over frames: its id, last box and smoothed scores."""

  id: int
  box: tuple[float, float, float, float]
  scores: np.ndarray | None = None
  missed: int = 0


class Tracker:
  """Gives detections track ids and smooths their class scores.

  ``update`` takes the boxes found in a frame and returns their ids;
  ``smooth`` folds a frame's scores into each track's average. Ids count
  up from 0 in the order faces first appear.
  """

  def __init__(self, *, min_iou: float = MIN_IOU, max_missed: int = 2,
               smooth: float = 0.0):
    self.min_iou = min_iou
    self.max_missed = max_missed
    self.alpha = smoothing_alpha(smooth)
    self.tracks: list[Track] = []
    self._next_id = 0

  def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
    """Track ids of ``boxes`` (x, y, w, h), one per box, in their order."""
    boxes = [tuple(float(v) for v in b) for b in boxes]
    pairs = match(np.asarray([t.box for t in self.tracks]).reshape(-1, 4),
                  np.asarray(boxes).reshape(-1, 4), self.min_iou)
    by_box = {j: self.tracks[i] for i, j in pairs}
    matched = {i for i, _ in pairs}
    kept = []
    for i, track in enumerate(self.tracks):
      if i not in matched:
        track.missed += 1
        if track.missed > self.max_missed:
          continue
      kept.append(track)
    ids = []
    for j, box in enumerate(boxes):
      track = by_box.get(j)
      if track is None:
        track = Track(self._next_id, box)
        self._next_id += 1
        kept.append(track)
      track.box, track.missed = box, 0
      ids.append(track.id)
    self.tracks = kept
    return ids

  def end_all(self) -> None:
    """Ends every track (a scene cut): later faces get new ids."""
    self.tracks = []

  def smooth(self, ids: Sequence[int], scores: np.ndarray) -> np.ndarray:
    """The smoothed scores (N, C) of tracks ``ids`` after this frame's
    ``scores`` (N, C)."""
    by_id = {t.id: t for t in self.tracks}
    out = np.array(scores, np.float64)
    if out.ndim != 2 or len(out) != len(ids):
      raise ValueError(f"scores must be (N, C) for {len(ids)} ids, got shape "
                       f"{out.shape}")
    for k, track_id in enumerate(ids):
      track = by_id[track_id]
      if track.scores is not None and track.scores.shape == out[k].shape:
        out[k] = self.alpha * out[k] + (1.0 - self.alpha) * track.scores
      track.scores = out[k].copy()
    return out
