"""Terminal progress: step rate and ETA, so a long run shows it is alive."""

import sys
import time


class Progress:
  """A one-line progress bar with step rate and ETA, on terminals only."""

  def __init__(self, total_steps: int, start_step: int, batch_size: int, *,
               enabled: bool = True):
    self.total = total_steps
    self.start = start_step
    self.batch_size = batch_size
    self.enabled = enabled and sys.stderr.isatty()
    self._t0 = time.monotonic()

  def update(self, step: int, note: str = "") -> None:
    if not self.enabled:
      return
    elapsed = time.monotonic() - self._t0
    done = step - self.start
    rate = done / elapsed if elapsed > 0 and done else 0.0
    eta = (self.total - step) / rate if rate else float("nan")
    frac = step / self.total if self.total else 1.0
    bar = "#" * int(30 * frac)
    sys.stderr.write(
        f"\r[{bar:<30}] {step}/{self.total} {rate:6.1f} step/s "
        f"{rate * self.batch_size:7.0f} img/s ETA {eta:5.0f}s {note}\x1b[K")
    sys.stderr.flush()

  def close(self) -> None:
    if self.enabled:
      sys.stderr.write("\n")
