"""CK+ (the CK+48 face crops) as a TFDS builder, with subjects for k-fold.

CK+ has no official split, so everything goes to `train` and evaluation
splits are made with ferjax.data.splits (stratified hold-out, or by subject).
Subject, sequence and frame come from the CK+48 file names.
"""

from collections.abc import Iterable, Iterator
import os
from pathlib import Path, PurePosixPath
import re
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data.image_files import (IMAGE_SIZE, IMAGE_SUFFIXES, FileReaders,
                                     archive_errors, check_manual_dir,
                                     decode_grey, dir_files, tree_root,
                                     zip_files)
from ferjax.labels import CKPLUS_CLASSES

# S<subject>_<sequence>_<frame>, e.g. S010_004_00000017.png.
FILE_NAME = re.compile(r"S(\d+)_(\d+)_(\d+)")

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
CK+ (Lucey et al., 2010) is licensed by its authors on request (the Extended
Cohn-Kanade page of the University of Pittsburgh's Affect Analysis Group);
CK+48 is the common 48x48 crop of its peak frames (e.g. Kaggle's "CK+48").
Put the CK+48 crops in the manual dir (`--manual-dir`): class folders
{', '.join(CKPLUS_CLASSES)} holding 48x48 grey images named
S<subject>_<sequence>_<frame>.png, either directly in the dir, one folder down
(e.g. CK+48/anger/...), or in a .zip with that layout.
"""


def _parse(path: str, data: bytes, where: str) -> dict:
  """One <class>/S<subject>_<sequence>_<frame>.<ext> file as an example.

  `where` (the dir or zip holding `path`) prefixes `path` in errors.
  """
  name = where + path
  pure = PurePosixPath(path)
  if len(pure.parts) != 2:
    raise ValueError(f"{name}: expected <class>/<image>")
  folder = pure.parts[0].lower()
  if folder not in CKPLUS_CLASSES:
    raise ValueError(f"{name}: class folder {pure.parts[0]!r} is not one of "
                     f"{list(CKPLUS_CLASSES)}")
  match = FILE_NAME.fullmatch(pure.stem)
  if pure.suffix.lower() not in IMAGE_SUFFIXES or not match:
    raise ValueError(f"{name}: expected a file named "
                     f"S<subject>_<sequence>_<frame> with a suffix in "
                     f"{IMAGE_SUFFIXES}, e.g. S010_004_00000017.png")
  subject, sequence, frame = (int(g) for g in match.groups())
  return {"image": decode_grey(data, name, IMAGE_SIZE)[..., None],
          "label": CKPLUS_CLASSES.index(folder), "subject": subject,
          "sequence": sequence, "frame": frame}


def _class_tree_root(paths: Iterable[tuple[str, ...]]
                     ) -> tuple[str, ...] | None:
  """The folders (none or one) above the class folders, if there are any."""
  return tree_root(paths, is_top=lambda name: name.lower() in CKPLUS_CLASSES,
                   levels=1)


def _read_tree(files: FileReaders, root: tuple[str, ...], where: str
               ) -> Iterator[tuple[str, dict]]:
  """Parses every file in a folder below `root`; files beside it are skipped."""
  for parts in sorted(files):
    if parts[:len(root)] == root and len(parts) > len(root) + 1:
      rel = "/".join(parts[len(root):])
      yield rel, _parse(rel, files[parts](), where)


def read_examples(manual_dir: str | os.PathLike[str]
                  ) -> Iterator[tuple[str, dict]]:
  """Yields (key, example) for every CK+48 image under `manual_dir`.

  Looks for the class folders in the dir, one folder down, then in *.zip
  files. Files beside the class folders (a README) are skipped; anything in a
  folder must be a well-named image in a known class folder.
  """
  manual_dir = Path(manual_dir)
  check_manual_dir(manual_dir, "CK+")
  files = dir_files(manual_dir)
  root = _class_tree_root(files)
  if root is not None:
    yield from _read_tree(files, root, f"{manual_dir.joinpath(*root)}/")
    return
  for zip_path in sorted(manual_dir.glob("*.zip")):
    with archive_errors(zip_path), zipfile.ZipFile(zip_path) as archive:
      files = zip_files(archive)
      root = _class_tree_root(files)
      if root is not None:
        yield from _read_tree(files, root,
                              f"{zip_path}:{''.join(p + '/' for p in root)}")
        return
  raise FileNotFoundError(
      f"no CK+48 data in {manual_dir}: looked for class folders "
      f"({', '.join(CKPLUS_CLASSES)}) there, one folder down, and in *.zip "
      f"files holding them")


class CkPlus(tfds.core.GeneratorBasedBuilder):
  """CK+48: 48x48 grey crops of the last frames of posed CK+ sequences."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: CK+48 folders or zip."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=CKPLUS_CLASSES),
            "subject": tfds.features.Scalar(dtype=np.int32),
            "sequence": tfds.features.Scalar(dtype=np.int32),
            "frame": tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=("image", "label"),
        homepage="https://www.jeffcohn.net/Resources/",
        citation="""@inproceedings{lucey2010extended,
  title={The Extended Cohn-Kanade Dataset (CK+): A complete dataset for
         action unit and emotion-specified expression},
  author={Lucey, Patrick and Cohn, Jeffrey F. and Kanade, Takeo and
          Saragih, Jason and Ambadar, Zara and Matthews, Iain},
  booktitle={CVPR Workshops},
  year={2010}}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    return {"train": self._generate_examples(dl_manager.manual_dir)}

  def _generate_examples(self, manual_dir: Path) -> Iterator[tuple[str, dict]]:
    return read_examples(manual_dir)
