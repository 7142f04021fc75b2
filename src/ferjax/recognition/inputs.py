"""Which files ``ferjax predict`` reads, and where it may write its copies.

Annotated copies keep their source's name, so an output folder that is (or
holds) an input would overwrite the originals, and one inside a scanned
folder would be read back as input by the next run.
"""

from collections.abc import Iterable
from pathlib import Path

# Annotated copies keep these suffixes; others become .png (a GIF's palette
# would smear the drawing).
ANNOTATED_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff",
                      ".webp")
# What OpenCV decodes; a folder scan takes these and nothing else.
IMAGE_SUFFIXES = ANNOTATED_SUFFIXES + (".gif",)


def _within(path: Path, folder: Path) -> bool:
  return path == folder or folder in path.parents


def expand_paths(args: Iterable[str | Path], *,
                 skip: str | Path | None = None,
                 suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
  """Files as given, plus the files under each directory whose suffix is
  one of ``suffixes`` (images by default), sorted.

  Nothing under ``skip`` (the output folder) is taken from a directory scan.
  """
  skipped = Path(skip).resolve() if skip is not None else None
  paths = []
  for arg in map(Path, args):
    if arg.is_dir():
      paths += sorted(
          p for p in arg.rglob("*")
          if p.is_file() and p.suffix.lower() in suffixes
          and not (skipped and _within(p.resolve(), skipped)))
    else:
      paths.append(arg)
  return paths


def check_out_dir(out_dir: str | Path | None,
                  inputs: Iterable[str | Path]) -> None:
  """Raises ValueError if ``out_dir`` is, or contains, one of ``inputs``."""
  if out_dir is None:
    return
  out = Path(out_dir).resolve()
  for arg in inputs:
    path = Path(arg).resolve()
    if _within(path, out):
      what = "is" if path == out else "contains"
      raise ValueError(
          f"--out {out_dir} {what} the input {arg}: annotated copies would "
          "overwrite the originals; choose a folder outside the inputs (a "
          "new folder inside an input folder is fine, it is not scanned)")
