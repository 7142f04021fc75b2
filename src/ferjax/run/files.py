"""How ferjax reads and writes the files of a run directory: one rule.

Every file read from a run directory (or a sweep's) is a regular file of
bounded size: a FIFO would block a command forever, a device such as
/dev/zero (or a link to one) would never end, and a file larger than any
ferjax writes is damage, so each is refused with an error naming the file
and, for size, the limit. Every file written is written atomically (a synced
temp file and a rename or link, ``ferjax.atomic``), and never over an
existing file unless updating that file is the command's purpose
(``calibrate`` its calibration.json, ``report`` its report.md): outputs the
user names (``--saliency-by-class``, ``export --out``) are new files only.
"""

import errno
import os
import pathlib
import stat
import tempfile
from collections.abc import Mapping

from ferjax import fs_errors

# Far above what ferjax writes (a config, a manifest, a calibration record:
# kilobytes; checksums of many checkpoints: a megabyte), far below memory.
MAX_RECORD_BYTES = 64 << 20
# A metric event is about a kilobyte (confusion matrices included): a million
# of them.
MAX_METRICS_BYTES = 1 << 30


class RunFileError(ValueError):
  """A file of a run that is not a regular file of bounded size."""


def _kind(mode: int) -> str:
  if stat.S_ISDIR(mode):
    return "a directory"
  if stat.S_ISFIFO(mode):
    return "a FIFO"
  if stat.S_ISSOCK(mode):
    return "a socket"
  return "a device"


def _size(limit: int) -> str:
  return f"{limit} bytes ({limit >> 20} MiB)"


def read_bytes(path: str | os.PathLike,
               limit: int = MAX_RECORD_BYTES) -> bytes:
  """The bytes of ``path``, a regular file of at most ``limit`` bytes.

  Opened without blocking and checked before reading, so that a FIFO or a
  device is refused instead of waited on or read without end. A missing
  file raises FileNotFoundError; anything else wrong, RunFileError naming
  the file.
  """
  path = pathlib.Path(path)
  try:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
  except FileNotFoundError:
    raise
  except OSError as e:
    raise RunFileError(f"{path}: cannot be read ({e.strerror})") from None
  try:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
      raise RunFileError(
          f"{path}: {_kind(info.st_mode)}, not a regular file; ferjax reads "
          "only regular files from a run directory")
    if info.st_size > limit:
      raise RunFileError(
          f"{path}: {info.st_size} bytes, more than the limit of "
          f"{_size(limit)} for this file; it is not what ferjax wrote")
    chunks, total = [], 0
    while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
      chunks.append(chunk)
      total += len(chunk)
      if total > limit:  # Grew since fstat.
        raise RunFileError(f"{path}: more than the limit of {_size(limit)} "
                           "for this file; it is not what ferjax wrote")
    return b"".join(chunks)
  except OSError as e:
    raise RunFileError(f"{path}: cannot be read ({e.strerror})") from None
  finally:
    os.close(fd)


def read_text(path: str | os.PathLike, limit: int = MAX_RECORD_BYTES) -> str:
  """``read_bytes`` decoded as UTF-8; undecodable bytes are RunFileError."""
  try:
    return read_bytes(path, limit).decode()
  except UnicodeDecodeError as e:
    raise RunFileError(f"{path}: not UTF-8 text ({e}); the file is "
                       "corrupt") from None


def check_new(path: str | os.PathLike, option: str,
              command: str) -> pathlib.Path:
  """``path`` if it can become a new file; else an error naming ``option``
  and ``command``, before any work is done.

  A path ending in a separator names a directory, not a file; an existing
  file is never overwritten; the folder must be writable.
  """
  text = os.fspath(path)
  if text.endswith(os.sep):
    raise ValueError(f"{option} {text}: ends in '{os.sep}', which names a "
                     "directory; give the file's name")
  path = pathlib.Path(text)
  if path.exists() or path.is_symlink():
    raise FileExistsError(f"{path}: already exists; {command} never "
                          f"overwrites, choose a new {option}")
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=path.parent):
      pass
  except OSError as e:
    raise ValueError(f"{option} {path}: cannot write there "
                     f"({fs_errors.describe(e)})") from None
  return path


def write_new(path: str | os.PathLike, data: bytes) -> pathlib.Path:
  """Writes ``data`` as the new file ``path``, atomically; FileExistsError
  (nothing written) if a file is there, even one created meanwhile."""
  return next(iter(write_new_files({path: data})))


def write_new_files(files: Mapping[str | os.PathLike, bytes]
                    ) -> list[pathlib.Path]:
  """Writes several new files all or nothing (a model and its metadata).

  Each is written to a synced temp file beside it, then linked to its name,
  which fails if that name exists; after any failure (a full disk, a file
  in the way) the files already linked are removed, so a retry finds
  nothing of this one.
  """
  written, temps = [], []
  umask = os.umask(0)  # Reading the umask means setting it: put it back.
  os.umask(umask)
  try:
    for path, data in files.items():
      path = pathlib.Path(path)
      path.parent.mkdir(parents=True, exist_ok=True)
      fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                 suffix=".tmp")
      temps.append(tmp)
      os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would outlive it.
      with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    for path, tmp in zip(files, temps):
      path = pathlib.Path(path)
      _link_new(tmp, path)
      written.append(path)
  except BaseException as e:
    for path in written:
      path.unlink(missing_ok=True)
    if isinstance(e, OSError) and e.filename is None:
      raise OSError(e.errno, e.strerror, str(path)) from e
    raise
  finally:
    for tmp in temps:
      pathlib.Path(tmp).unlink(missing_ok=True)
  return written


# File systems without hard links (FAT, some network and FUSE mounts).
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK)


def _link_new(tmp: str, path: pathlib.Path) -> None:
  """Gives the complete file ``tmp`` the name ``path`` if that is free."""
  try:
    os.link(tmp, path)
    return
  except FileExistsError:
    raise FileExistsError(errno.EEXIST, "already exists; never overwritten",
                          str(path)) from None
  except OSError as e:
    if e.errno not in _NO_LINKS:
      raise
  # Checked, then renamed: a file created in between would be replaced.
  if path.exists() or path.is_symlink():
    raise FileExistsError(errno.EEXIST, "already exists; never overwritten",
                          str(path))
  os.rename(tmp, path)
