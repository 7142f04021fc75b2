"""Terminal progress: step rate and ETA, so a long run shows it is alive.

While the bar is shown it owns the terminal's last line: log records to the
same stream go through a handler that clears the bar, writes the record and
draws the bar again, so log lines never glue to it. Off a terminal (a log
file, a pipe) there is no bar and no carriage return, only the log lines.
"""

import logging
import sys
import time
from typing import TextIO


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


class Progress:
  """A one-line progress bar with step rate and ETA, on terminals only.

  The rate and ETA count from the first update on: the first step compiles
  the program, and counting it would promise hours for a one-minute run.
  """

  def __init__(self, total_steps: int, start_step: int, batch_size: int, *,
               enabled: bool = True, stream: TextIO | None = None):
    self.total = total_steps
    self.start = start_step
    self.batch_size = batch_size
    self.stream = stream or sys.stderr
    self.enabled = enabled and self.stream.isatty()
    self._first: tuple[float, int] | None = None
    self._line = ""
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

  def update(self, step: int, note: str = "") -> None:
    if not self.enabled:
      return
    now = time.monotonic()
    if self._first is None:
      self._first = (now, step)
    t0, s0 = self._first
    rate = (step - s0) / (now - t0) if now > t0 and step > s0 else 0.0
    eta = f"{(self.total - step) / rate:5.0f}s" if rate else "  --"
    frac = step / self.total if self.total else 1.0
    bar = "#" * int(30 * frac)
    self._line = (f"[{bar:<30}] {step}/{self.total} {rate:6.1f} step/s "
                  f"{rate * self.batch_size:7.0f} img/s ETA {eta} {note}")
    self.redraw()

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
