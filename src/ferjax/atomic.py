"""Atomic writes: a reader sees the old file (or no directory) or the new one.

Files go through a synced temp file and a rename; a directory is built under
a temporary name beside itself and renamed when complete.
"""

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator


def _umask() -> int:
  # Reading the umask means setting it; put it straight back.
  umask = os.umask(0)
  os.umask(umask)
  return umask


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
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename.
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def directory(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary directory that becomes ``path`` if the block succeeds.

  ``path`` must not exist yet (or be an empty directory); on an error the
  temporary directory is removed and ``path`` is untouched.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.",
                                      suffix=".tmp"))
  try:
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename.
    yield tmp
    os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
