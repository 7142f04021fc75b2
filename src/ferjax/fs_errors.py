"""One-line messages for file-system faults: which path, and why.

A workdir that is a file, a read-only mount or a full disk are the user's to
fix, so the CLI reports them as ``PATH: reason`` instead of a traceback.
"""

import errno
import os
import pathlib

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def _file_in_the_way(path: str) -> pathlib.Path | None:
  """``path`` or its nearest ancestor that exists, if that is not a folder."""
  for p in (pathlib.Path(path), *pathlib.Path(path).parents):
    if p.exists():
      return None if p.is_dir() else p
  return None


def describe(e: OSError) -> str:
  """``PATH: reason`` for an OSError, naming a file where a folder belongs."""
  path = e.filename if e.filename is not None else e.filename2
  if path is None:
    return e.strerror or str(e)
  path = os.fsdecode(path)
  if e.errno in (errno.EEXIST, errno.ENOTDIR):
    blocker = _file_in_the_way(path)
    if blocker is not None:
      return f"{blocker}: is a file, expected a directory"
  return f"{path}: {_REASONS.get(e.errno, e.strerror or str(e))}"
