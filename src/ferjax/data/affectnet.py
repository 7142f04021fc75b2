"""AffectNet (the manually annotated part) as a TFDS builder.

The official lists give each image's face box and one of eleven labels: the
eight expressions, then None, Uncertain and Non-Face. The expressions are
stored by name in FER2013's order with contempt eighth; the other three are
no expression to learn, so they are skipped and counted (build log and
``info.metadata["skipped"]``). Faces are cropped by their box and stored as
48x48 grey, as every ferjax dataset is.
"""

import collections
from collections.abc import Iterator
import csv
import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data.face_crop import decode_any_grey, square_crop
from ferjax.data.image_files import IMAGE_SIZE, check_manual_dir
from ferjax.labels import FER2013_CONTEMPT_CLASSES, canonical_name

_log = logging.getLogger(__name__)

# AffectNet's expression numbers, as its paper and README list them.
EXPRESSIONS: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger",
    "Contempt")
NON_EXPRESSIONS: dict[int, str] = {8: "None", 9: "Uncertain", 10: "Non-Face"}
LABEL_TO_INDEX: dict[int, int] = {
    number: FER2013_CONTEMPT_CLASSES.index(canonical_name(name))
    for number, name in enumerate(EXPRESSIONS)}
LISTS = "Manually_Annotated_file_lists"
IMAGES = "Manually_Annotated_Images"
CSV_FILES: dict[str, str] = {"train": "training.csv",
                             "validation": "validation.csv"}
# The official header; validation.csv is distributed without it.
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width",
           "face_height", "facial_landmarks", "expression", "valence",
           "arousal")

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
AffectNet (Mollahosseini, Hasani and Mahoor, 2017) is given by its authors
on request, for non-commercial research, after signing their licence
agreement (mohammadmahoor.com/affectnet). Put in the manual dir
(`--manual-dir`), directly or one folder down:
  {LISTS}/training.csv and validation.csv   (the official lists)
  {IMAGES}/<subDirectory_filePath>          (the images they name)
"""


@dataclasses.dataclass(frozen=True)
class Entry:
  """One listed face: its file, box and FER2013-order label."""
  path: str
  box: tuple[float, float, float, float]
  label: int


def find_root(manual_dir: Path) -> Path:
  """The folder holding the lists, in the manual dir or one down."""
  check_manual_dir(manual_dir, "AffectNet")
  for root in [manual_dir] + sorted(manual_dir.glob("*/")):
    if (root / LISTS).is_dir():
      return root
  raise FileNotFoundError(
      f"no AffectNet in {manual_dir}: looked for {LISTS}/ there and one "
      "folder down")


def read_list(path: Path) -> tuple[list[Entry], dict[str, int]]:
  """The expression entries of one list and the count of each skipped
  label; errors name the line and field."""
  entries, skipped = [], collections.Counter()
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    for row in reader:
      where = f"{path} line {reader.line_num}"
      if reader.line_num == 1 and row and row[0] == COLUMNS[0]:
        continue
      if not row:
        continue
      if len(row) != len(COLUMNS):
        raise ValueError(f"{where}: {len(row)} fields, expected "
                         f"{len(COLUMNS)} ({', '.join(COLUMNS)})")
      fields = dict(zip(COLUMNS, row))
      try:
        label = int(fields["expression"])
      except ValueError:
        label = -1
      if label in NON_EXPRESSIONS:
        skipped[NON_EXPRESSIONS[label]] += 1
        continue
      if label not in LABEL_TO_INDEX:
        raise ValueError(f"{where}: expression {fields['expression']!r} is "
                         "not an integer in [0, 10]")
      try:
        box = tuple(float(fields[c]) for c in COLUMNS[1:5])
      except ValueError:
        raise ValueError(f"{where}: face_x/face_y/face_width/face_height are "
                         f"not numbers: {row[1:5]}") from None
      if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{where}: face box {box} has no area")
      entries.append(Entry(fields["subDirectory_filePath"], box,
                           LABEL_TO_INDEX[label]))
  return entries, dict(skipped)


def read_lists(manual_dir: str | os.PathLike[str]
               ) -> tuple[Path, dict[str, list[Entry]], dict[str, dict]]:
  """(images folder, {split: entries}, {split: skipped counts}); every
  listed image is checked to exist before any is decoded."""
  root = find_root(Path(manual_dir))
  entries, skipped = {}, {}
  for split, name in CSV_FILES.items():
    path = root / LISTS / name
    if not path.is_file():
      raise FileNotFoundError(f"{path}: missing; AffectNet's {LISTS} holds "
                              f"{' and '.join(CSV_FILES.values())}")
    entries[split], skipped[split] = read_list(path)
  images = root / IMAGES
  missing = [str(images / e.path) for split in entries for e in entries[split]
             if not (images / e.path).is_file()]
  if missing:
    raise FileNotFoundError(
        f"AffectNet: {len(missing)} listed image(s) missing under {images}, "
        f"e.g. {', '.join(missing[:3])}")
  if not entries["train"]:
    raise ValueError(f"{root / LISTS / CSV_FILES['train']}: no expression "
                     "images; the train split is needed")
  return images, entries, skipped


class AffectNet(tfds.core.GeneratorBasedBuilder):
  """AffectNet's manually annotated faces: 8 expressions, train/validation."""

  name = "affectnet"  # Not TFDS's "affect_net" from the class name.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: the official lists and boxes."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=FER2013_CONTEMPT_CLASSES),
            "source_id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="http://mohammadmahoor.com/affectnet/",
        citation="""@article{mollahosseini2017affectnet,
  title={AffectNet: A Database for Facial Expression, Valence, and Arousal
         Computing in the Wild},
  author={Mollahosseini, Ali and Hasani, Behzad and Mahoor, Mohammad H.},
  journal={IEEE Transactions on Affective Computing},
  year={2017}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    images, entries, skipped = read_lists(dl_manager.manual_dir)
    self.info.metadata["skipped"] = skipped
    for split, counts in skipped.items():
      _log.info("affectnet %s: skipped %s", split, ", ".join(
          f"{n} {label}" for label, n in sorted(counts.items())) or "none")
    return {split: self._generate_examples(images, split_entries)
            for split, split_entries in entries.items() if split_entries}

  def _generate_examples(self, images: Path, entries: list[Entry]
                         ) -> Iterator[tuple[str, dict]]:
    for e in entries:
      path = images / e.path
      crop = square_crop(decode_any_grey(path.read_bytes(), str(path)), e.box)
      yield e.path, {"image": crop[..., None], "label": e.label,
                     "source_id": e.path}
