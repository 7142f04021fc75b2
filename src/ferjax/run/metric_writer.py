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

    Also drops a torn last line left by a process killed mid-write.
    """
    if not self.enabled or not self.path.exists():
      return
    kept = []
    for line in self.path.read_text().splitlines():
      try:
        event = json.loads(line)
      except json.JSONDecodeError:
        continue
      if event.get("step", 0) <= step:
        kept.append(line)
    atomic.write_text(self.path, "".join(f"{line}\n" for line in kept))

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
