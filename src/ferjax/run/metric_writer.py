"""Writes metrics where researchers read them: JSON lines and TensorBoard.

The run's metrics file (``ferjax.run.run_dir``) holds one JSON object per event,
e.g. ``{"step": 400, "split": "test", "accuracy": 0.93, ...}``. Scalars also
go to TensorBoard under ``<split>/<name>``; structured values (confusion
matrix, per-class accuracy) stay in the JSON lines. A value that is not a finite
number is written as ``null`` (see ``ferjax.finite_json``).
"""

import json
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from ferjax import atomic
from ferjax import finite_json


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
    data = self.path.read_bytes()
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
    event = {"step": int(step), "split": split, **metrics}
    try:
      with open(self.path, "a") as f:
        f.write(finite_json.dumps(event) + "\n")
        f.flush()
        os.fsync(f.fileno())
    except OSError as e:  # A full disk names no file; say which.
      raise OSError(e.errno, e.strerror, str(self.path)) from e
    for name, value in metrics.items():
      if isinstance(value, (int, float)) and math.isfinite(value):
        self._tb.add_scalar(f"{split}/{name}", value, int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
