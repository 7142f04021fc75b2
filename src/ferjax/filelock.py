"""Advisory file locks (``flock``): released by the OS when the holder dies.

A ``kill -9`` therefore never leaves a stale lock behind, which is why
ferjax locks with ``flock`` rather than with lock files that must be removed.
"""

import contextlib
import fcntl
import os
import pathlib
from collections.abc import Iterator


def try_lock(path: str | os.PathLike) -> int | None:
  """An exclusive lock on ``path`` as an open fd, or None if another holds it."""
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    return None
  return fd


@contextlib.contextmanager
def held(path: str | os.PathLike) -> Iterator[None]:
  """Waits for and holds an exclusive lock on ``path`` for the block."""
  pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)
