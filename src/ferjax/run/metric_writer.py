"""Writes metrics where researchers read them: JSON lines and TensorBoard.

The run's metrics file (``ferjax.run.run_dir``) holds one JSON object per event,
e.g. ``{"step": 400, "split": "test", "accuracy": 0.93, ...}``. Scalars also
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
from collections.abc import Mapping
from typing import Any

import numpy as np

from ferjax import atomic
from ferjax import finite_json

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
    tab (under ``hparams/``): a sweep's trials side by side, by field."""
    if not self.enabled:
      return
    fields = {name: value if isinstance(value, (bool, int, float, str))
              else json.dumps(value) for name, value in _leaves(config, "")}
    self._tb.add_hparams(
        fields, {f"hparams/{k}": float(v) for k, v in metrics.items()
                 if k.rsplit("/", 1)[-1] not in _NOT_SCALARS
                 and math.isfinite(v)},
        name="hparams", global_step=int(step))

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _leaves(tree: Mapping[str, Any], prefix: str):
  for key, value in tree.items():
    if isinstance(value, Mapping) and value:
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value
