"""RAF-DB basic (Real-world Affective Faces) as a TFDS builder.

RAF-DB labels its seven basic expressions 1..7 in its own order; they are
stored by name in FER2013's order, so a FER2013 model reads them unchanged.
The images are RAF's 100x100 aligned faces (or the original photos cropped
by RAF's face boxes), stored as 48x48 grey as every ferjax dataset is.
"""

from collections.abc import Iterator
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data.face_crop import decode_any_grey, square_crop
from ferjax.data.image_files import IMAGE_SIZE, check_manual_dir
from ferjax.labels import FER2013_CLASSES, canonical_name

# RAF-DB's label numbers, as its README lists them.
RAF_LABELS: dict[int, str] = {
    1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness",
    6: "Anger", 7: "Neutral"}
LABEL_TO_INDEX: dict[int, int] = {
    number: FER2013_CLASSES.index(canonical_name(name))
    for number, name in RAF_LABELS.items()}
# The partition file, as distributed (sic: "patition").
LABEL_FILE = ("EmoLabel", "list_patition_label.txt")
SPLITS = ("train", "test")

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
RAF-DB (Li, Deng and Du, CVPR 2017) is given by its authors on request, for
non-commercial research, after signing their agreement (whdeng.cn/RAF).
Put its `basic` folder in the manual dir (`--manual-dir`), directly, one or
two folders down (e.g. RAF-DB/basic/):
  EmoLabel/list_patition_label.txt    lines `train_00001.jpg 5`
  Image/aligned/train_00001_aligned.jpg     (config `aligned`, the default)
  Image/original/train_00001.jpg and
  Annotation/boundingbox/train_00001_boundingbox.txt (`x1 y1 x2 y2`)
                                            (config `original`)
"""


def find_root(manual_dir: Path) -> Path:
  """The folder holding EmoLabel/, in the manual dir or up to two down."""
  check_manual_dir(manual_dir, "RAF-DB")
  candidates = [manual_dir] + sorted(manual_dir.glob("*/")) + sorted(
      manual_dir.glob("*/*/"))
  for root in candidates:
    if root.joinpath(*LABEL_FILE).is_file():
      return root
  raise FileNotFoundError(
      f"no RAF-DB in {manual_dir}: looked for {'/'.join(LABEL_FILE)} there "
      "and up to two folders down")


def read_labels(path: Path) -> list[tuple[str, str, int]]:
  """(split, file name, FER2013 label index) of every line of the
  partition file; errors name the line."""
  entries, seen = [], set()
  for number, line in enumerate(path.read_text().splitlines(), 1):
    if not line.strip():
      continue
    where = f"{path} line {number}"
    fields = line.split()
    if len(fields) != 2:
      raise ValueError(f"{where}: expected `<image> <label>`, got {line!r}")
    name, label = fields
    split = name.split("_", 1)[0]
    if split not in SPLITS:
      raise ValueError(f"{where}: {name!r} does not start with train_ or "
                       "test_")
    if not label.isdigit() or int(label) not in LABEL_TO_INDEX:
      numbers = ", ".join(f"{k} {v}" for k, v in RAF_LABELS.items())
      raise ValueError(f"{where}: label {label!r} is not one of RAF-DB's "
                       f"1..7 ({numbers})")
    if name in seen:
      raise ValueError(f"{where}: {name!r} is listed twice")
    seen.add(name)
    entries.append((split, name, LABEL_TO_INDEX[int(label)]))
  if not entries:
    raise ValueError(f"{path}: no labelled images")
  return entries


def _read_box(path: Path) -> tuple[float, float, float, float]:
  try:
    x1, y1, x2, y2 = (float(v) for v in path.read_text().split()[:4])
  except (ValueError, OSError) as e:
    raise ValueError(f"{path}: expected a face box `x1 y1 x2 y2` ({e})"
                     ) from None
  if x2 <= x1 or y2 <= y1:
    raise ValueError(f"{path}: empty face box {x1} {y1} {x2} {y2}")
  return x1, y1, x2 - x1, y2 - y1


def image_paths(root: Path, name: str, layout: str
                ) -> tuple[Path, Path | None]:
  """The image of a partition-file entry and, for `original`, its box."""
  stem = Path(name).stem
  if layout == "aligned":
    return root / "Image" / "aligned" / f"{stem}_aligned.jpg", None
  return (root / "Image" / "original" / name,
          root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt")


def read_examples(manual_dir: str | os.PathLike[str], layout: str = "aligned"
                  ) -> dict[str, list[tuple[str, dict]]]:
  """{split: [(key, example)]}; every listed file is checked to exist
  before any is decoded."""
  root = find_root(Path(manual_dir))
  entries = read_labels(root.joinpath(*LABEL_FILE))
  paths = [image_paths(root, name, layout) for _, name, _ in entries]
  missing = [str(p) for pair in paths for p in pair
             if p is not None and not p.is_file()]
  if missing:
    raise FileNotFoundError(
        f"RAF-DB {layout}: {len(missing)} file(s) of "
        f"{'/'.join(LABEL_FILE)} missing, e.g. {', '.join(missing[:3])}")
  by_split: dict[str, list[tuple[str, dict]]] = {s: [] for s in SPLITS}
  for (split, name, label), (image, box) in zip(entries, paths):
    grey = decode_any_grey(image.read_bytes(), str(image))
    crop = square_crop(grey, _read_box(box) if box else None)
    by_split[split].append((name, {"image": crop[..., None], "label": label,
                                   "source_id": name}))
  return by_split


class RafDb(tfds.core.GeneratorBasedBuilder):
  """RAF-DB basic: 15,339 faces, 7 expressions, its train/test partition."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: aligned or original+boxes."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="aligned",
                              description="RAF's 100x100 aligned faces."),
      tfds.core.BuilderConfig(
          name="original",
          description="The original photos cropped by RAF's face boxes."),
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
        homepage="http://www.whdeng.cn/RAF/model1.html",
        citation="""@inproceedings{li2017reliable,
  title={Reliable Crowdsourcing and Deep Locality-Preserving Learning for
         Expression Recognition in the Wild},
  author={Li, Shan and Deng, Weihong and Du, JunPing},
  booktitle={CVPR},
  year={2017}}""",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    by_split = read_examples(dl_manager.manual_dir, self.builder_config.name)
    if not by_split["train"]:
      raise ValueError(f"{dl_manager.manual_dir}: RAF-DB lists no train_ "
                       "images; its train split is needed")
    return {split: self._generate_examples(examples)
            for split, examples in by_split.items() if examples}

  def _generate_examples(self, examples: list[tuple[str, dict]]
                         ) -> Iterator[tuple[str, dict]]:
    yield from examples
