"""Writes metrics where researchers read them: JSON lines and TensorBoard.

The run's metrics file (``ferjax.run.run_dir``) holds one JSON object per event,
e.g. ``{"step": 400, "split": "test", "accuracy": 0.93, ...,
"wall_time": 1765111234.5}`` (``WALL_TIME``: when it was written). Scalars also
go to TensorBoard under ``<split>/<name>`` (not the example counts, which
never change), each confusion matrix as an image
``<split>/confusion_matrix``, and at the end of training the config and
final metrics as hyperparameters (``hparams/``, TensorBoard's HParams tab);
per-class accuracy stays in the JSON lines. A
value that is not a finite number is written as ``null`` (see
``ferjax.finite_json``).
"""

import json
import math
import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ferjax import atomic
from ferjax import finite_json
from ferjax.run import files

# Every event's wall-clock time, Unix seconds: when it was written, so a
# log and the metrics line up. Timing, never compared between runs.
WALL_TIME = "wall_time"
# Not plotted: the same number at every evaluation.
_NOT_SCALARS = ("num_examples",)
# White to dark blue by the fraction of each true class, as report's plots.
_LIGHT, _DARK = np.array([247, 251, 255]), np.array([8, 48, 107])
_CELL = 16  # Pixels a side of a confusion matrix cell.


def confusion_image(matrix: Any) -> np.ndarray:
  """uint8 (H, W, 3): each cell shaded by its share of the true class (row),
  the diagonal framed, so TensorBoard shows where the errors go."""
  cm = np.asarray(matrix, np.float64)
  fraction = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
  image = _LIGHT + fraction[..., None] * (_DARK - _LIGHT)
  image = np.repeat(np.repeat(image, _CELL, 0), _CELL, 1).astype(np.uint8)
  for i in range(len(cm)):
    cell = image[i * _CELL:(i + 1) * _CELL, i * _CELL:(i + 1) * _CELL]
    cell[[0, -1], :] = cell[:, [0, -1]] = (230, 85, 13)
  return image


def parse_events(data: bytes) -> tuple[list[dict[str, Any]], int | None]:
  """The events of a metrics file's bytes, and the number of a torn last
  line left out (None if there is none).

  Only the last line can be torn by a kill: any other line that is not a
  JSON event ({"step": int, "split": str, ...}) raises a ValueError naming
  its number.
  """
  lines = data.split(b"\n")
  if lines[-1] == b"":
    lines.pop()
  events, torn = [], None
  for number, line in enumerate(lines, 1):
    try:
      event = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
      if number == len(lines) and not data.endswith(b"\n"):
        torn = number
        continue
      raise ValueError(f"line {number} is not valid JSON (the file is "
                       "damaged)") from None
    if not (isinstance(event, dict) and isinstance(event.get("step"), int)
            and isinstance(event.get("split"), str)):
      raise ValueError(f"line {number} is not a metric event (expected "
                       '{"step": int, "split": str, ...})')
    events.append(event)
  return events, torn


class MetricWriter:
  """Appends metric events; only the process that owns the run writes."""

  def __init__(self, path: str | pathlib.Path,
               tensorboard_dir: str | pathlib.Path, *, enabled: bool = True):
    self.path = pathlib.Path(path)
    self.enabled = enabled
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(tensorboard_dir))

  def truncate_after(self, step: int) -> None:
    """Drops events after ``step``: a resumed run logs them again.

    Also drops a torn last line left by a process killed mid-write; any
    other line that is not an event is an error, never dropped.
    """
    if not self.enabled or not self.path.exists():
      return
    data = files.read_bytes(self.path, files.MAX_METRICS_BYTES)
    try:
      events, _ = parse_events(data)
    except ValueError as e:
      raise ValueError(f"{self.path}: {e}; resuming would rewrite the file "
                       "without it: repair or remove that line") from None
    lines = data.split(b"\n")
    atomic.write_bytes(self.path, b"".join(
        line + b"\n" for line, event in zip(lines, events)
        if event["step"] <= step))

  def write(self, step: int, split: str, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    event = {"step": int(step), "split": split, **metrics,
             WALL_TIME: round(time.time(), 3)}
    try:
      with open(self.path, "a") as f:
        f.write(finite_json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:  # A full disk names no file; say which.
      raise OSError(e.errno, e.strerror, str(self.path)) from e
    for name, value in metrics.items():
      if (isinstance(value, (int, float)) and math.isfinite(value)
          and name not in _NOT_SCALARS):
        self._tb.add_scalar(f"{split}/{name}", value, int(step))
    if metrics.get("confusion_matrix"):
      self._tb.add_image(f"{split}/confusion_matrix",
                         confusion_image(metrics["confusion_matrix"]),
                         int(step), dataformats="HWC")
    self._tb.flush()

  def hparams(self, config: Mapping[str, Any], metrics: Mapping[str, float],
              step: int) -> None:
    """The run's config fields and final metrics for TensorBoard's HParams
    tab: a sweep's trials side by side, by field.

    Written into the run's own event file (not tensorboardX's usual
    subfolder), so that the HParams tab names each session by its run.
    """
    if not self.enabled:
      return
    from tensorboardX.summary import hparams as hparams_summary
    fields = {name: value if isinstance(value, (bool, int, float, str))
              else json.dumps(value) for name, value in _leaves(config, "")}
    final = {f"hparams/{k}": float(v) for k, v in metrics.items()
             if k.rsplit("/", 1)[-1] not in _NOT_SCALARS and math.isfinite(v)}
    for summary in hparams_summary(fields, final):
      self._tb.file_writer.add_summary(summary)
    for name, value in final.items():
      self._tb.add_scalar(name, value, int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _leaves(tree: Mapping[str, Any], prefix: str):
  for key, value in tree.items():
    if isinstance(value, Mapping) and value:
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value
