"""Atomic file writes: a reader sees the old file or the new one, never half."""

import os
import pathlib
import tempfile


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` through a synced temp file and a rename."""
  write_bytes(path, text.encode())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a synced temp file and a rename."""
  path = pathlib.Path(path)
  try:
    _replace(path, data)
  except OSError as e:
    if e.filename is None:  # A failed write names no file; say which.
      raise OSError(e.errno, e.strerror, str(path)) from e
    raise


def _replace(path: pathlib.Path, data: bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                             suffix=".tmp")
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would outlive the rename.
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
