"""FER2013 as a TFDS builder that reads every form the data is handed out in.

Users have the challenge CSV, its tarball, or Kaggle's image folders (zipped
or not); all give the same examples, labelled in FER2013 order whatever the
folder order. Images are read with cv2 and stored as Tensor features with
file_format='array_record', so building and reading need no TensorFlow.
"""

import collections
from collections.abc import Iterable, Iterator
import csv
import dataclasses
import hashlib
import io
import logging
import os
from pathlib import Path, PurePosixPath
import tarfile
from typing import Any
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data.image_files import (IMAGE_SIZE, IMAGE_SUFFIXES, FileReaders,
                                     archive_errors, check_manual_dir,
                                     decode_grey, dir_files, tree_root,
                                     zip_files)
from ferjax.labels import FER2013_CLASSES

_log = logging.getLogger(__name__)

# The official usages, as CSV `Usage` values and image file name prefixes.
USAGE_TO_SPLIT: dict[str, str] = {
    "Training": "train", "PublicTest": "public_test",
    "PrivateTest": "private_test"}
SPLITS: tuple[str, ...] = tuple(USAGE_TO_SPLIT.values())
# `clean` drops images whose grey levels vary by less than this (std).
CONSTANT_STD = 1.0
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
TAR_NAME = "fer2013.tar.gz"
_CSV_COLUMNS = ("emotion", "pixels", "Usage")

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Put one of these in the manual dir (`--manual-dir`), from Kaggle's "Challenges
in Representation Learning: Facial Expression Recognition Challenge" or a
mirror:
  * fer2013.csv (columns emotion, pixels, Usage; 35,887 rows) or Kaggle's
    icml_face_data.csv, directly in the dir or one folder down;
  * {TAR_NAME}, which holds fer2013/fer2013.csv;
  * the image-folder form train/<class>/*.jpg and test/<class>/*.jpg with
    <class> in {', '.join(sorted(FER2013_CLASSES))}, directly in the dir or one
    folder down, or a .zip holding it (e.g. Kaggle's archive.zip). A file's
    split is its name's prefix: Training_, PublicTest_ or PrivateTest_.
Splits with no examples (e.g. a withheld PrivateTest) are left out.
"""


@dataclasses.dataclass(frozen=True)
class Example:
  """One face: its official split, where it came from, pixels and label."""
  split: str
  source_id: str
  image: np.ndarray  # (48, 48) uint8.
  label: int


def _parse_csv(text: io.TextIOBase, name: str) -> list[Example]:
  """Reads challenge-CSV rows; errors name the file and line.

  An example's source_id is the CSV's file name and line, e.g. fer2013.csv:2
  for the first row after the header.
  """
  reader = csv.reader(text)
  try:
    return _parse_rows(reader, name)
  except UnicodeDecodeError as e:
    # Decoded in chunks: the reader's line number may be short of the byte.
    raise ValueError(f"{name}: not UTF-8 text (byte {e.object[e.start]:#04x});"
                     " expected the challenge's CSV") from None
  except csv.Error as e:
    # The csv module's 128 KB field limit: a FER2013 field is under 10 KB.
    raise ValueError(f"{name} line {reader.line_num}: not a valid CSV row "
                     f"({e}); expected the challenge's CSV") from None


def _parse_rows(reader: Any, name: str) -> list[Example]:
  """The rows of a csv.reader, as _parse_csv says."""
  file_name = PurePosixPath(name).name
  header = [column.strip() for column in next(reader, [])]
  missing = [c for c in _CSV_COLUMNS if c not in header]
  if missing:
    raise ValueError(f"{name}: header {header} lacks column(s) {missing}; "
                     f"expected {list(_CSV_COLUMNS)}")
  emotion_at, pixels_at, usage_at = (header.index(c) for c in _CSV_COLUMNS)
  examples = []
  for row in reader:
    where = f"{name} line {reader.line_num}"
    if len(row) != len(header):
      raise ValueError(f"{where}: {len(row)} fields, expected {len(header)}")
    try:
      label = int(row[emotion_at])
    except ValueError:
      label = -1
    if not 0 <= label < len(FER2013_CLASSES):
      raise ValueError(f"{where}: emotion {row[emotion_at]!r} is not an "
                       f"integer in [0, {len(FER2013_CLASSES) - 1}]")
    usage = row[usage_at].strip()
    if usage not in USAGE_TO_SPLIT:
      raise ValueError(f"{where}: Usage {usage!r} is not one of "
                       f"{list(USAGE_TO_SPLIT)}")
    tokens = row[pixels_at].split()
    if len(tokens) != IMAGE_SIZE * IMAGE_SIZE:
      raise ValueError(f"{where}: {len(tokens)} pixels, expected "
                       f"{IMAGE_SIZE * IMAGE_SIZE}")
    try:
      pixels = np.array(tokens, dtype=np.int64)
    except ValueError as e:
      raise ValueError(f"{where}: pixels are not integers ({e})") from None
    if pixels.min() < 0 or pixels.max() > 255:
      raise ValueError(f"{where}: pixel values outside [0, 255]")
    examples.append(Example(
        USAGE_TO_SPLIT[usage], f"{file_name}:{reader.line_num}",
        pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE), label))
  return examples


def _split_tree_root(paths: Iterable[tuple[str, ...]]
                     ) -> tuple[str, ...] | None:
  """The folders (none or one) above train/ and test/, if there are any."""
  return tree_root(paths, is_top=lambda name: name in ("train", "test"),
                   levels=2)


def _read_image_tree(files: FileReaders, root: tuple[str, ...],
                     where: str) -> list[Example]:
  """Reads {train,test}/<class>/<image> below `root`; other files are skipped.

  `where` (the dir or zip holding `root`) prefixes paths in errors.
  """
  examples = []
  for parts in sorted(files):
    if parts[:len(root)] != root or parts[len(root):][:1] not in (
        ("train",), ("test",)):
      continue
    path = "/".join(parts[len(root):])
    name = where + path
    if len(parts) != len(root) + 3:
      raise ValueError(f"{name}: expected {{train,test}}/<class>/<image>")
    folder = parts[-2].lower()
    if folder not in FER2013_CLASSES:
      raise ValueError(f"{name}: class folder {parts[-2]!r} is not one of "
                       f"{sorted(FER2013_CLASSES)}")
    if PurePosixPath(path).suffix.lower() not in IMAGE_SUFFIXES:
      raise ValueError(f"{name}: not an image file ({IMAGE_SUFFIXES})")
    usage = parts[-1].split("_", 1)[0]
    if usage not in USAGE_TO_SPLIT:
      raise ValueError(f"{name}: file name does not start with one of "
                       f"{[u + '_' for u in USAGE_TO_SPLIT]}")
    examples.append(Example(USAGE_TO_SPLIT[usage], path,
                            decode_grey(files[parts](), name),
                            FER2013_CLASSES.index(folder)))
  return examples


def _find_csv(manual_dir: Path) -> Path | None:
  for root in [manual_dir] + sorted(p for p in manual_dir.iterdir()
                                    if p.is_dir()):
    for name in CSV_NAMES:
      if (root / name).is_file():
        return root / name
  return None


def load_examples(manual_dir: str | os.PathLike[str]
                  ) -> tuple[list[Example], str]:
  """Reads every example from the first form found in `manual_dir`.

  Forms are tried lossless first: the CSV (in the dir or one folder down),
  the tarball, image folders (in the dir or one folder down), *.zip files.
  Returns the examples and a description of what was read.
  """
  manual_dir = Path(manual_dir)
  check_manual_dir(manual_dir, "FER2013")
  found = _find_csv(manual_dir)
  if found:
    with open(found, newline="", encoding="utf-8") as f:
      return _parse_csv(f, str(found)), f"csv {found}"
  tar_path = manual_dir / TAR_NAME
  if tar_path.is_file():
    with archive_errors(tar_path), tarfile.open(tar_path, "r:gz") as archive:
      for member in archive:
        if member.isfile() and PurePosixPath(member.name).name in CSV_NAMES:
          with io.TextIOWrapper(archive.extractfile(member), encoding="utf-8",
                                newline="") as f:
            return (_parse_csv(f, f"{tar_path}:{member.name}"),
                    f"tarball {tar_path}")
    raise ValueError(f"{tar_path}: holds none of {CSV_NAMES}")
  files = dir_files(manual_dir)
  root = _split_tree_root(files)
  if root is not None:
    where = f"{manual_dir.joinpath(*root)}/"
    return _read_image_tree(files, root, where), f"image folders {where}"
  for zip_path in sorted(manual_dir.glob("*.zip")):
    with archive_errors(zip_path), zipfile.ZipFile(zip_path) as archive:
      files = zip_files(archive)
      root = _split_tree_root(files)
      if root is not None:
        where = f"{zip_path}:{''.join(p + '/' for p in root)}"
        return _read_image_tree(files, root, where), f"zip {where}"
  raise FileNotFoundError(
      f"no FER2013 data in {manual_dir}: looked for {' or '.join(CSV_NAMES)} "
      f"(there or one folder down), {TAR_NAME}, train/ or test/ class folders "
      f"(there or one folder down) and *.zip files holding train/ or test/ "
      f"class folders")


def _digest(image: np.ndarray) -> str:
  return hashlib.sha1(image.tobytes()).hexdigest()


def clean_examples(examples: list[Example], min_std: float = CONSTANT_STD
                   ) -> tuple[list[Example], dict]:
  """Drops blank/constant images and test images that also occur in train.

  Duplicates are exact pixel matches (by hash), so they are only found where
  the pixels were stored losslessly or re-encoded identically. Groups of
  identical images with more than one label are reported, not removed.
  Returns the kept examples and a JSON-able report of what was done.
  """
  constant = [e for e in examples if float(e.image.std()) < min_std]
  constant_ids = {e.source_id for e in constant}
  rest = [e for e in examples if e.source_id not in constant_ids]
  train_digests = {_digest(e.image) for e in rest if e.split == "train"}
  leaked = [e for e in rest
            if e.split != "train" and _digest(e.image) in train_digests]
  leaked_ids = {e.source_id for e in leaked}
  kept = [e for e in rest if e.source_id not in leaked_ids]
  by_digest = collections.defaultdict(list)
  for e in rest:
    by_digest[_digest(e.image)].append(e)
  conflicts = [sorted(e.source_id for e in group)
               for group in by_digest.values()
               if len({e.label for e in group}) > 1]
  report = {
      "min_std": min_std,
      "removed_constant": sorted(constant_ids),
      "removed_test_in_train": sorted(leaked_ids),
      "conflicting_label_groups": sorted(conflicts),
  }
  _log.info(
      "fer2013 clean: removed %d constant images (std < %s), %d test images "
      "also in train; %d groups of identical images have conflicting labels "
      "(kept)", len(constant), min_std, len(leaked), len(conflicts))
  for name in ("removed_constant", "removed_test_in_train"):
    if report[name]:
      _log.info("fer2013 clean: %s: %s", name, ", ".join(report[name]))
  return kept, report


class Fer2013(tfds.core.GeneratorBasedBuilder):
  """FER2013 faces, 48x48 grey, 7 expressions, official usages as splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: CSV, tarball, folders and zip."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="original",
                              description="Every image, as distributed."),
      tfds.core.BuilderConfig(
          name="clean",
          description=(
              f"Without constant images (std < {CONSTANT_STD} grey level) and "
              "test images whose pixels also occur in train; removals and "
              "label conflicts are in info.metadata.")),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=FER2013_CLASSES),
            "source_id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://arxiv.org/abs/1307.0414",
        citation="""@inproceedings{goodfellow2013challenges,
  title={Challenges in Representation Learning: A report on three machine
         learning contests},
  author={Goodfellow, Ian J. and others},
  booktitle={ICONIP},
  year={2013}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    examples, source = load_examples(dl_manager.manual_dir)
    _log.info("fer2013: read %d examples from %s", len(examples), source)
    self.info.metadata["source"] = source
    if self.builder_config.name == "clean":
      examples, report = clean_examples(examples)
      self.info.metadata["clean"] = report
    by_split = collections.defaultdict(list)
    for e in examples:
      by_split[e.split].append(e)
    if not by_split["train"]:
      # TFDS would cache a build without it as complete, and every later
      # prepare would find that empty dataset "already built".
      raise ValueError(
          f"{source}: no Training examples (read {len(examples)} examples"
          + "".join(f", {len(v)} {k}" for k, v in by_split.items() if v)
          + "); FER2013 needs its train split")
    # TFDS cannot write a split without examples, so empty ones are omitted.
    return {split: self._generate_examples(by_split[split])
            for split in SPLITS if by_split[split]}

  def _generate_examples(self, examples: list[Example]
                         ) -> Iterator[tuple[str, dict]]:
    for e in examples:
      yield e.source_id, {"image": e.image[..., None], "label": e.label,
                          "source_id": e.source_id}
