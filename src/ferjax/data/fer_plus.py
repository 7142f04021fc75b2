"""FER+ (FER2013 relabelled by ten annotators each) as a TFDS builder.

microsoft/FERPlus's ``fer2013new.csv`` holds, row for row, ten votes per
FER2013 image over eight emotions plus ``unknown`` and ``NF`` (not a face).
The votes become a label as the FER+ paper's code does (Barsoum et al. 2016,
``src/ferplus.py``): single votes are dropped as outliers, then

* ``majority``: the emotion with more than half of the votes, else unknown;
* ``probability`` / ``crossentropy``: the top emotions (at most three, until
  75% of the votes) as a distribution, unknown if that holds no more than
  half of the votes or unknown/NF tie with the top.

Images whose result is unknown or NF are dropped (counted in
``info.metadata["dropped"]``), contempt is an eighth class. As in the
paper's training script, the test splits are labelled by ``majority``
whatever the config. Every example keeps its ``distribution`` and raw
``votes``; ``label`` is the distribution's top class.

Training follows the paper's code (``_process_target``; ``TRAIN_TARGETS``):
``majority`` trains on ``label``; ``probability`` (the paper's PLD,
"probabilistic label drawing") on a label drawn from ``distribution`` each
time an image is seen; ``crossentropy`` (the paper's CEL) on cross-entropy
against ``distribution`` itself. Evaluation uses ``label``, the majority.
"""

import collections
from collections.abc import Iterator, Sequence
import csv
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data import fer2013
from ferjax.data.image_files import IMAGE_SIZE
from ferjax.labels import FER2013_CONTEMPT_CLASSES, canonical_name

_log = logging.getLogger(__name__)

FERPLUS_CSV = "fer2013new.csv"
# fer2013new.csv's vote columns, in its order.
VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
    "contempt", "unknown", "NF")
NUM_EMOTIONS = 8  # The vote columns before unknown and NF.
# Vote column i of an emotion -> its index in FER2013_CONTEMPT_CLASSES.
EMOTION_TO_INDEX: tuple[int, ...] = tuple(
    FER2013_CONTEMPT_CLASSES.index(canonical_name(name))
    for name in VOTE_COLUMNS[:NUM_EMOTIONS])
MODES = ("majority", "probability", "crossentropy")
# What each mode trains on (``loading.soft_labels``): the paper's code
# draws a one-hot target from the distribution for ``probability`` and
# passes the distribution as the target for ``crossentropy``.
TRAIN_TARGETS: dict[str, str | None] = {
    "majority": None, "probability": "sample",
    "crossentropy": "distribution"}

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
FER+ (Barsoum et al., ICMI 2016) labels FER2013's images anew. Put in the
manual dir (`--manual-dir`), directly or one folder down:
  * {FERPLUS_CSV} from github.com/microsoft/FERPlus (MIT licence);
  * FER2013's fer2013.csv (or its tarball), from Kaggle, whose pixels it
    labels row by row (the image folders do not keep the rows' order).
"""


def process_votes(votes: Sequence[float], mode: str) -> list[float]:
  """The paper code's ``_process_data``: ten vote counts to a distribution
  over the ten columns (unknown when the votes do not agree enough)."""
  if mode not in MODES:
    raise ValueError(f"FER+ mode must be one of {MODES}, got {mode!r}")
  raw = [0.0 if v <= 1.0 else float(v) for v in votes]  # Outliers out.
  size = len(raw)
  unknown = [0.0] * size
  unknown[VOTE_COLUMNS.index("unknown")] = 1.0
  total = sum(raw)
  emotion = [0.0] * size
  if mode == "majority":
    peak = max(raw)
    if peak > 0.5 * total:
      emotion[int(np.argmax(raw))] = peak
    else:
      emotion = unknown
  else:
    taken, count, valid = 0.0, 0, True
    while taken < 0.75 * total and count < 3 and valid:
      peak = max(raw)
      for i in range(size):
        if raw[i] == peak:
          emotion[i] = peak
          raw[i] = 0.0
          taken += emotion[i]
          count += 1
          if i >= NUM_EMOTIONS:  # Unknown or NF among the top.
            valid = False
            if sum(emotion) > peak:  # Emotions came before it: keep those.
              emotion[i] = 0.0
              count -= 1
            break
    if sum(emotion) <= 0.5 * total or count > 3:
      emotion = unknown
  total = sum(emotion)
  return [v / total for v in emotion]


def read_votes(path: Path) -> list[tuple[str, str, list[int]]]:
  """(Usage, image name, ten votes) of every row; errors name the line."""
  rows = []
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.reader(f)
    header = [c.strip() for c in next(reader, [])]
    expected = ["Usage", "Image name", *VOTE_COLUMNS]
    if header != expected:
      raise ValueError(f"{path}: header {header}, expected {expected}")
    for row in reader:
      where = f"{path} line {reader.line_num}"
      if len(row) != len(expected):
        raise ValueError(f"{where}: {len(row)} fields, expected "
                         f"{len(expected)}")
      try:
        votes = [int(v) for v in row[2:]]
      except ValueError:
        raise ValueError(f"{where}: votes {row[2:]} are not integers"
                         ) from None
      if min(votes) < 0:
        raise ValueError(f"{where}: negative votes {votes}")
      rows.append((row[0].strip(), row[1].strip(), votes))
  return rows


def _find(manual_dir: Path, name: str) -> Path | None:
  for root in [manual_dir] + sorted(p for p in manual_dir.iterdir()
                                    if p.is_dir()):
    if (root / name).is_file():
      return root / name
  return None


def read_examples(manual_dir: str | os.PathLike[str], mode: str
                  ) -> tuple[dict[str, list[dict]], dict]:
  """{split: [example]} of the FER2013 rows FER+ keeps, and a report of
  the rows dropped (by reason and split); rows are joined by position and
  must agree on their Usage."""
  manual_dir = Path(manual_dir)
  examples, source = fer2013.load_examples(manual_dir)
  if not source.startswith(("csv", "tarball")):
    raise ValueError(
        f"FER+ labels FER2013 row by row, so it needs fer2013.csv (or "
        f"{fer2013.TAR_NAME}); found only {source}")
  votes_path = _find(manual_dir, FERPLUS_CSV)
  if votes_path is None:
    raise FileNotFoundError(
        f"no {FERPLUS_CSV} in {manual_dir} or one folder down; get it from "
        "github.com/microsoft/FERPlus")
  rows = read_votes(votes_path)
  if len(rows) != len(examples):
    raise ValueError(f"{votes_path}: {len(rows)} rows, but {source} has "
                     f"{len(examples)}; FER+ labels FER2013 row by row")
  by_split = {split: [] for split in fer2013.SPLITS}
  dropped = collections.defaultdict(collections.Counter)
  for i, (example, (usage, name, votes)) in enumerate(zip(examples, rows)):
    if fer2013.USAGE_TO_SPLIT.get(usage) != example.split:
      raise ValueError(f"{votes_path} line {i + 2}: Usage {usage!r}, but "
                       f"{example.source_id} is {example.split}")
    if not name:
      dropped[example.split]["no image name"] += 1
      continue
    split_mode = mode if example.split == "train" else "majority"
    distribution = process_votes(votes, split_mode)
    top = int(np.argmax(distribution))
    if top >= NUM_EMOTIONS:
      dropped[example.split][VOTE_COLUMNS[top]] += 1
      continue
    target = np.zeros(len(FER2013_CONTEMPT_CLASSES), np.float32)
    target[list(EMOTION_TO_INDEX)] = distribution[:NUM_EMOTIONS]
    target /= target.sum()
    by_split[example.split].append({
        "image": example.image[..., None],
        "label": EMOTION_TO_INDEX[top],
        "distribution": target,
        "votes": np.asarray(votes, np.int32),
        "source_id": name})
  report = {split: dict(counts) for split, counts in dropped.items()}
  return by_split, {"source": source, "votes": str(votes_path),
                    "dropped": report}


class FerPlus(tfds.core.GeneratorBasedBuilder):
  """FER+: FER2013's faces with ten-annotator labels, 8 classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: the paper's three label modes."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  TRAIN_TARGETS = TRAIN_TARGETS
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=mode, description=f"Train labels by the "
                              f"FER+ paper's {mode!r} mode.")
      for mode in MODES]

  def _info(self) -> tfds.core.DatasetInfo:
    classes = len(FER2013_CONTEMPT_CLASSES)
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(
                shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(names=FER2013_CONTEMPT_CLASSES),
            "distribution": tfds.features.Tensor(shape=(classes,),
                                                 dtype=np.float32),
            "votes": tfds.features.Tensor(shape=(len(VOTE_COLUMNS),),
                                          dtype=np.int32),
            "source_id": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://github.com/microsoft/FERPlus",
        citation="""@inproceedings{barsoum2016training,
  title={Training Deep Networks for Facial Expression Recognition with
         Crowd-Sourced Label Distribution},
  author={Barsoum, Emad and Zhang, Cha and Canton Ferrer, Cristian and
          Zhang, Zhengyou},
  booktitle={ICMI},
  year={2016}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    by_split, report = read_examples(dl_manager.manual_dir,
                                     self.builder_config.name)
    self.info.metadata.update(report)
    _log.info("fer_plus/%s: dropped %s", self.builder_config.name,
              report["dropped"] or "nothing")
    if not by_split["train"]:
      raise ValueError(f"{report['votes']}: FER+ keeps no Training rows; "
                       "the train split is needed")
    return {split: self._generate_examples(examples)
            for split, examples in by_split.items() if examples}

  def _generate_examples(self, examples: list[dict]
                         ) -> Iterator[tuple[str, dict]]:
    for example in examples:
      yield example["source_id"], example
