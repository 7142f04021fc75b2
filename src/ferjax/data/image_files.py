"""Image files of the manual-download datasets, in folders or zip archives.

FER2013's image-folder layout and CK+48 share these: files are listed by
their path's parts (relative to a folder or a zip) and read only when asked,
and each decodes to a 48x48 grey array or fails naming the file.
"""

from collections.abc import Callable, Iterable, Iterator
import contextlib
import functools
from pathlib import Path, PurePosixPath
import tarfile
import zipfile
import zlib

import cv2
import numpy as np

from ferjax.data.image_header import image_size

IMAGE_SIZE = 48
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def decode_grey(data: bytes, where: str, size: int = IMAGE_SIZE
                ) -> np.ndarray:
  """Decodes an image file to (size, size) uint8, rejecting other sizes.

  FER2013 and CK+48 are 48x48 by definition: another size means another
  dataset or a re-export, so it is an error rather than silently resized,
  and one the header declares is refused before decoding (a few bytes may
  declare gigabytes of pixels). Colour files are turned grey the way cv2
  does (equal channels stay exact).
  """
  declared = image_size(data)
  if declared is not None and declared != (size, size):
    raise ValueError(f"{where}: image is {declared[0]}x{declared[1]}, "
                     f"expected {size}x{size}")
  image = (cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
           if declared else None)  # cv2 asserts on empty input.
  if image is None:
    raise ValueError(f"{where}: not a readable image")
  if image.shape != (size, size):
    raise ValueError(f"{where}: image is {image.shape[1]}x{image.shape[0]}, "
                     f"expected {size}x{size}")
  return image


# Files by their path's parts (relative to a dir or zip), each with a reader.
FileReaders = dict[tuple[str, ...], Callable[[], bytes]]


def tree_root(paths: Iterable[tuple[str, ...]], *,
              is_top: Callable[[str], bool],
              levels: int) -> tuple[str, ...] | None:
  """The folders (none or one) above a layout's top folders, if any.

  A top folder is one ``is_top`` accepts with files ``levels`` folders down
  (FER2013: ``train/<class>/<file>``; CK+: ``<class>/<file>``). Archives
  often wrap the layout in one folder; the first such root is taken.
  """
  for depth in (0, 1):
    roots = [p[:depth] for p in paths
             if len(p) == depth + levels + 1 and is_top(p[depth])]
    if roots:
      return min(roots)
  return None


def _is_ignored(parts: tuple[str, ...]) -> bool:
  """Hidden files and macOS zip metadata are not part of any layout."""
  return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def dir_files(root: Path) -> FileReaders:
  """Every file below `root` but hidden ones, read only when asked."""
  files = {p.relative_to(root).parts: p.read_bytes
           for p in root.rglob("*") if p.is_file()}
  return {k: v for k, v in files.items() if not _is_ignored(k)}


def zip_files(archive: zipfile.ZipFile) -> FileReaders:
  """Every file in an open zip but hidden ones and __MACOSX metadata."""
  files = {PurePosixPath(n).parts: functools.partial(archive.read, n)
           for n in archive.namelist() if not n.endswith("/")}
  return {k: v for k, v in files.items() if not _is_ignored(k)}


def check_manual_dir(manual_dir: Path, dataset: str) -> None:
  """Raises FileNotFoundError saying why ``manual_dir`` is not a folder."""
  if manual_dir.is_file():
    raise FileNotFoundError(f"{dataset} manual dir {manual_dir} is a file; "
                            "expected the folder that holds the download")
  if not manual_dir.is_dir():
    raise FileNotFoundError(f"{dataset} manual dir {manual_dir} does not exist")


@contextlib.contextmanager
def archive_errors(path: Path) -> Iterator[None]:
  """Turns a damaged archive's low-level errors into one naming the archive.

  A cut-off download is the usual cause: zipfile, gzip and tarfile then raise
  BadZipFile, EOFError or zlib errors that say neither which file nor why.
  """
  try:
    yield
  except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:
    reason = str(e) or type(e).__name__
    raise ValueError(f"{path}: damaged or truncated archive ({reason}); "
                     "download it again") from None
