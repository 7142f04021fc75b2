"""Progress: loss, step rate and ETA, so a long run shows it is alive.

On a terminal, a bar (with the last logging window's train loss) that owns
the terminal's last line: log records to the
same stream go through a handler that clears the bar, writes the record and
draws the bar again, so log lines never glue to it. Off a terminal (a batch
job's log, ``nohup``, a sweep trial's ``stderr.log``) there is no bar and no
carriage return: each logging window is one log line instead (step, epoch,
train loss and accuracy, learning rate, images/s, ETA), as big_vision's and
Lightning's logs read.
"""

import logging
import sys
import time
from collections.abc import Mapping
from typing import TextIO

log = logging.getLogger("ferjax")


def duration(seconds: float) -> str:
  """``45s``, ``12m30s``, ``3h05m``: an ETA a reader takes in at a glance."""
  seconds = max(0, round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class _BarAwareHandler(logging.Handler):
  """Wraps a stream handler: clear the bar, emit, redraw."""

  def __init__(self, inner: logging.Handler, progress: "Progress"):
    super().__init__(inner.level)
    self.inner = inner
    self.progress = progress

  def emit(self, record: logging.LogRecord) -> None:
    self.progress.clear()
    self.inner.handle(record)
    self.progress.redraw()


# The bar is redrawn at most this often.
_REDRAW_SECONDS = 0.1


class Progress:
  """A one-line progress bar on terminals, a log line per window elsewhere.

  The rate and ETA count from the first update on: the first step compiles
  the program, and counting it would promise hours for a one-minute run.
  ``enabled=False`` (a process other than the chief) shows nothing.
  """

  def __init__(self, total_steps: int, start_step: int, batch_size: int, *,
               enabled: bool = True, stream: TextIO | None = None):
    self.total = total_steps
    self.start = start_step
    self.batch_size = batch_size
    self.stream = stream or sys.stderr
    self.shown = enabled
    self.enabled = enabled and self.stream.isatty()  # The bar.
    self._first: tuple[float, int] | None = None
    self._drawn = float("-inf")  # When the bar was last redrawn.
    self._line = ""
    self._loss: float | None = None  # The last window's train loss.
    self._wrapped: list[tuple[logging.Handler, _BarAwareHandler]] = []
    if self.enabled:
      self._wrap_log_handlers()

  def _wrap_log_handlers(self) -> None:
    root = logging.getLogger()
    for i, handler in enumerate(root.handlers):
      if getattr(handler, "stream", None) is self.stream:
        wrapper = _BarAwareHandler(handler, self)
        root.handlers[i] = wrapper
        self._wrapped.append((handler, wrapper))

  def _rate(self, step: int) -> float:
    """Steps per second since the first update."""
    now = time.monotonic()
    if self._first is None:
      self._first = (now, step)
    t0, s0 = self._first
    return (step - s0) / (now - t0) if now > t0 and step > s0 else 0.0

  def update(self, step: int, note: str = "",
             window: Mapping[str, float] | None = None) -> None:
    """Step ``step`` done; ``window``: the train metrics of a logging window
    that ended with it (a log line off a terminal)."""
    if not self.shown:
      return
    rate = self._rate(step)
    if window is not None and "loss" in window:
      self._loss = float(window["loss"])
    if not self.enabled:
      if window is not None:
        self._log_window(step, note, window, rate)
      return
    now = time.monotonic()
    if now - self._drawn < _REDRAW_SECONDS and step < self.total:
      return  # A terminal write per step would cost more than the step.
    self._drawn = now
    eta = f"{(self.total - step) / rate:5.0f}s" if rate else "  --"
    frac = step / self.total if self.total else 1.0
    bar = "#" * int(30 * frac)
    loss = f" loss {self._loss:.4f}" if self._loss is not None else ""
    self._line = (f"[{bar:<30}] {step}/{self.total}{loss} {rate:6.1f} "
                  f"step/s {rate * self.batch_size:7.0f} img/s ETA {eta} "
                  f"{note}")
    self.redraw()

  def _log_window(self, step: int, note: str, window: Mapping[str, float],
                  rate: float) -> None:
    parts = [f"{name} {window[key]:.4f}" for key, name in
             (("loss", "train loss"), ("accuracy", "accuracy"))
             if key in window]
    if "learning_rate" in window:
      parts.append(f"lr {window['learning_rate']:.4g}")
    if "images_per_second" in window:
      parts.append(f"{window['images_per_second']:.0f} img/s")
    if step < self.total:
      parts.append("ETA " + (duration((self.total - step) / rate) if rate
                             else "--"))
    log.info("step %d/%d%s: %s", step, self.total,
             f" ({note})" if note else "", ", ".join(parts))

  def clear(self) -> None:
    if self.enabled and self._line:
      self.stream.write("\r\x1b[K")
      self.stream.flush()

  def redraw(self) -> None:
    if self.enabled and self._line:
      self.stream.write(f"\r{self._line}\x1b[K")
      self.stream.flush()

  def close(self) -> None:
    if not self.enabled:
      return
    root = logging.getLogger()
    for handler, wrapper in self._wrapped:
      if wrapper in root.handlers:
        root.handlers[root.handlers.index(wrapper)] = handler
    self._wrapped = []
    if self._line:
      self.stream.write("\n")
      self.stream.flush()
    self._line = ""
