"""JAFFE (Japanese Female Facial Expression) as a TFDS builder.

The labels are in the file names as distributed: ``KA.AN1.39.tiff`` is
subject ``KA``, expression ``AN`` (its first repetition), image 39. All 213
images go to ``train`` with the subject recorded, so that evaluation is by
subject-independent folds (``input.protocol='kfold'``) as for CK+. Some
files are palette images: they are turned grey through their palette. The
256x256 portraits are stored whole as 48x48 grey, as every ferjax dataset
is (build an ``image_folder`` from them to crop by detected faces instead).
"""

from collections.abc import Iterator
import os
from pathlib import Path
import re

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data.face_crop import decode_any_grey, square_crop
from ferjax.data.image_files import IMAGE_SIZE, check_manual_dir
from ferjax.labels import FER2013_CLASSES

# Expression codes of the file names.
CODES: dict[str, str] = {
    "AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy",
    "NE": "neutral", "SA": "sad", "SU": "surprise"}
# <subject>.<code><repetition>.<number>.tiff, e.g. KA.AN1.39.tiff.
FILE_NAME = re.compile(r"([A-Z]{2})\.([A-Z]{2})(\d+)\.(\d+)\.tiff?",
                       re.IGNORECASE)

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
JAFFE (Lyons, Kamachi and Gyoba, 1998) is given by its authors on request,
for non-commercial research (zenodo.org/record/3451524). Put its .tiff
files, named like KA.AN1.39.tiff, in the manual dir (`--manual-dir`),
directly or one folder down (e.g. jaffedbase/); other files are skipped.
"""


def subject_id(code: str) -> int:
  """A number for a two-letter subject code (KA -> 10*26+0): subjects must
  be integers for the folds."""
  first, second = (ord(c) - ord("A") for c in code.upper())
  return first * 26 + second


def find_images(manual_dir: Path) -> list[Path]:
  """The .tiff files in the manual dir, else one folder down."""
  check_manual_dir(manual_dir, "JAFFE")
  for root in [manual_dir] + sorted(manual_dir.glob("*/")):
    found = sorted(p for p in root.iterdir() if p.is_file()
                   and p.suffix.lower() in (".tiff", ".tif")
                   and not p.name.startswith("."))
    if found:
      return found
  raise FileNotFoundError(f"no JAFFE .tiff files in {manual_dir} or one "
                          "folder down")


def parse_name(path: Path) -> tuple[str, int, int]:
  """(subject code, FER2013 label, image number) of a JAFFE file name."""
  match = FILE_NAME.fullmatch(path.name)
  if not match or match.group(2).upper() not in CODES:
    raise ValueError(
        f"{path}: expected a name like KA.AN1.39.tiff (subject, expression "
        f"code in {', '.join(CODES)} with a repetition, image number)")
  subject, code, _, number = match.groups()
  return (subject.upper(), FER2013_CLASSES.index(CODES[code.upper()]),
          int(number))


def read_examples(manual_dir: str | os.PathLike[str]
                  ) -> Iterator[tuple[str, dict]]:
  """(file name, example) of every JAFFE image; every name is checked
  before any image is decoded."""
  paths = find_images(Path(manual_dir))
  parsed = [parse_name(p) for p in paths]
  for path, (subject, label, _) in zip(paths, parsed):
    grey = square_crop(decode_any_grey(path.read_bytes(), str(path)))
    yield path.name, {"image": grey[..., None], "label": label,
                      "subject": subject_id(subject), "source_id": path.name}


class Jaffe(tfds.core.GeneratorBasedBuilder):
  """JAFFE: 213 posed images of 10 Japanese women, 7 expressions."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: labels from the file names."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=FER2013_CLASSES),
            "subject": tfds.features.Scalar(dtype=np.int32),
            "source_id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://zenodo.org/record/3451524",
        citation="""@inproceedings{lyons1998coding,
  title={Coding Facial Expressions with Gabor Wavelets},
  author={Lyons, Michael and Akamatsu, Shigeru and Kamachi, Miyuki and
          Gyoba, Jiro},
  booktitle={Third IEEE International Conference on Automatic Face and
             Gesture Recognition},
  year={1998}}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    # Parsed here, so that a bad name fails before TFDS starts writing.
    examples = list(read_examples(dl_manager.manual_dir))
    return {"train": self._generate_examples(examples)}

  def _generate_examples(self, examples: list[tuple[str, dict]]
                         ) -> Iterator[tuple[str, dict]]:
    yield from examples
