"""Materialises TFDS splits as uint8 arrays for the in-memory input path.

FER-sized datasets fit in device memory many times over, so the trainer
reads each split once (through ``tfds.data_source``, no TensorFlow) and keeps
it on the devices.
"""

import contextlib
import dataclasses
import errno
import io
import logging
import os
import pathlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from ferjax import filelock
from ferjax.data import registry

log = logging.getLogger("ferjax")

# The per-example class distribution a builder may store (FER+'s votes).
SOFT_TARGET_FEATURE = "distribution"
# What training makes of it: a label drawn from it per step, or itself as
# the target of the loss (``soft_labels``).
SOFT_LABEL_MODES = ("sample", "distribution")


@dataclasses.dataclass(frozen=True)
class Split:
  """One split in memory: uint8 NHWC images, int32 labels, subject ids,
  (datasets with a ``distribution`` feature: FER+) float32 (N, C) soft
  targets, and (runs that fuse geometry: ``data.geometry_features``) each
  example's float32 (N, 2, D) geometric descriptors, the face's and its
  mirror image's, with its (N,) FaceMesh scores."""

  images: np.ndarray
  labels: np.ndarray
  subjects: np.ndarray | None = None
  targets: np.ndarray | None = None
  geometry: np.ndarray | None = None
  mesh_scores: np.ndarray | None = None

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, idx: np.ndarray) -> "Split":
    def rows(a):
      return None if a is None else a[idx]
    return Split(self.images[idx], self.labels[idx], rows(self.subjects),
                 rows(self.targets), rows(self.geometry),
                 rows(self.mesh_scores))

  @classmethod
  def concatenate(cls, splits: list["Split"]) -> "Split":
    def joined(parts):
      return (None if any(p is None for p in parts)
              else np.concatenate(parts))
    return cls(np.concatenate([s.images for s in splits]),
               np.concatenate([s.labels for s in splits]),
               joined([s.subjects for s in splits]),
               joined([s.targets for s in splits]),
               joined([s.geometry for s in splits]),
               joined([s.mesh_scores for s in splits]))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a run records about its data (for the manifest and inference)."""

  name: str
  version: str
  builder_config: str | None
  class_names: tuple[str, ...]
  image_shape: tuple[int, int, int]
  split_sizes: dict[str, int]
  data_dir: str
  # How the train split's soft targets train (``soft_labels``), or None.
  soft_labels: str | None = None


def _lock(data_dir: pathlib.Path,
          name: str) -> contextlib.AbstractContextManager[None]:
  """Serialises preparation so parallel trials never race on one cache."""
  return filelock.held(data_dir / f".{name}.lock")


def prepared_builder(name: str, *, data_dir: str | None = None,
                     manual_dir: str | None = None,
                     builder_config: str | None = None) -> Any:
  """A builder whose files exist, building them once if needed."""
  return prepare_builder(name, data_dir=data_dir, manual_dir=manual_dir,
                         builder_config=builder_config)[0]


def prepare_builder(name: str, *, data_dir: str | None = None,
                    manual_dir: str | None = None,
                    builder_config: str | None = None) -> tuple[Any, bool]:
  """``prepared_builder``, and whether this process built it (False when it
  was there, or another process built it while this one waited).

  A complete dataset is read without the lock: TFDS moves a build into place
  only once it is whole, and shared datasets are often on read-only mounts.
  """
  builder = registry.make_builder(name, data_dir=data_dir,
                                  builder_config=builder_config)
  built = False
  if not builder.is_prepared():
    with _lock(pathlib.Path(builder.data_dir_root), name):
      builder = registry.make_builder(name, data_dir=data_dir,
                                      builder_config=builder_config)
      if not builder.is_prepared():
        _check_manual_files(builder, manual_dir)
        _build(builder, manual_dir)
        built = True
  check_source = getattr(builder, "check_source", None)
  if check_source is not None and manual_dir is not None:
    check_source(manual_dir)  # A build of another folder (image_folder).
  if not builder.info.splits:
    raise ValueError(
        f"{builder.data_dir} holds a build of {name} without any split (made "
        "by an earlier ferjax from empty data); delete that folder and "
        "prepare the dataset again")
  return builder, built


class DatasetNotPrepared(FileNotFoundError):
  """A manually downloaded dataset whose files are not where ferjax looked."""


def _check_manual_files(builder: Any, manual_dir: str | None) -> None:
  """One paragraph, before TFDS's traceback: what is missing and the fix."""
  instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
  if not instructions:
    return
  given = manual_dir is not None
  where = (pathlib.Path(os.path.expanduser(manual_dir)) if given else
           pathlib.Path(builder.data_dir_root) / "downloads" / "manual")
  if where.is_dir() and any(where.iterdir()):
    return
  if where.is_file():
    found = f"the manual dir {where} is a file, not a directory"
  elif where.is_dir():
    found = f"the manual dir {where} is empty"
  else:
    found = f"the manual dir {where} does not exist"
  if not given:
    found += " (no manual dir was given)"
  data_dir = f" --data-dir {builder.data_dir_root}"
  raise DatasetNotPrepared(
      f"dataset {builder.name} is not prepared in {builder.data_dir_root} "
      f"and must be downloaded by hand: {found}.\n{instructions.rstrip()}\n"
      f"Then prepare it once:\n"
      f"  ferjax data prepare {builder.name} --manual-dir DIR{data_dir}\n"
      "or pass --manual-dir DIR to 'ferjax train' or 'ferjax crossval' "
      "(the same as --config.input.manual_dir=DIR).")


def _build(builder: Any, manual_dir: str | None) -> None:
  """Builds quietly: TFDS's "downloading Unknown size" misleads (nothing is
  downloaded), and its bars are carriage-return noise in a log file."""
  log.info("building dataset %s (first use) in %s", builder.name,
           builder.data_dir)
  start = time.monotonic()
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir) if manual_dir else None)
  tfds.display_progress_bar(sys.stderr.isatty())
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      builder.download_and_prepare(download_config=download_config)
  except RuntimeError as e:
    # array_record's writer reports a full disk as a RuntimeError.
    if "No space left on device" not in str(e):
      raise
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                  builder.data_dir_root) from None
  log.info("built dataset %s in %.1f s", builder.name,
           time.monotonic() - start)


def chunks(data: Any, size: int = 4096) -> Iterator[Split]:
  """A Split or a data source in consecutive chunks of ``size`` examples.

  Statistics accumulated over chunks are then identical for a split in
  memory and the same split streamed from disk.
  """
  for start in range(0, len(data), size):
    if isinstance(data, Split):
      yield data.take(np.arange(start, min(start + size, len(data))))
    else:
      records = data.__getitems__(range(start, min(start + size, len(data))))
      yield Split(np.stack([r["image"] for r in records]),
                  np.asarray([r["label"] for r in records], np.int32))


def check_split(builder: Any, split: str) -> None:
  """Raises ValueError unless ``split`` (TFDS slicing allowed) names
  examples of the dataset; TFDS's own error for an empty slice ("Paths
  sequence can not be of 0 length") names neither the split nor why."""
  if split.split("[")[0] not in builder.info.splits:
    raise ValueError(
        f"dataset {builder.name!r} has no split {split!r}; it has "
        f"{', '.join(builder.info.splits.keys())}")
  if not builder.info.splits[split].num_examples:
    whole = builder.info.splits[split.split("[")[0]].num_examples
    raise ValueError(f"split {split!r} of dataset {builder.name!r} selects no "
                     f"examples (of {whole}); give a non-empty slice")


def read_split(builder: Any, split: str) -> Split:
  """Reads a whole split (TFDS slicing allowed: ``train[:10%]``) into memory."""
  check_split(builder, split)
  source = builder.as_data_source(split=split)
  n = len(source)
  records = source.__getitems__(range(n)) if n else []
  shape = builder.info.features["image"].shape
  images = np.empty((n, *shape), np.uint8)
  labels = np.empty((n,), np.int32)
  has_subject = "subject" in builder.info.features
  subjects = np.empty((n,), np.int64) if has_subject else None
  has_targets = SOFT_TARGET_FEATURE in builder.info.features
  targets = (np.empty((n, len(builder.info.features["label"].names)),
                      np.float32) if has_targets else None)
  for i, record in enumerate(records):
    images[i] = record["image"]
    labels[i] = record["label"]
    if has_subject:
      subjects[i] = record["subject"]
    if has_targets:
      targets[i] = record[SOFT_TARGET_FEATURE]
  return Split(images, labels, subjects, targets)


def load_partitions(builder: Any, input_cfg: Any,
                    names: set[str]) -> dict[str, Split]:
  """The splits a run asks for, under the config's evaluation protocol.

  ``official``: TFDS splits as stored (slicing allowed). ``review_70_30``:
  the review's protocol, a seeded stratified 70/30 split of the pooled
  ``input.pool_splits``, named ``train`` and ``test``. ``kfold``: fold
  ``input.fold`` of ``input.folds`` subject-grouped folds (no person on both
  sides, as CK+ needs), named ``train`` and ``test``.
  """
  protocol = input_cfg.get("protocol", "official")
  if protocol == "official":
    return {name: read_split(builder, name) for name in names}
  unknown = names - {"train", "test"}
  if unknown:
    raise ValueError(
        f"config.input.protocol={protocol!r} defines the splits 'train' and "
        f"'test' only; the config asks for {', '.join(sorted(unknown))}")
  from ferjax.data import splits
  pool_names = input_cfg.get("pool_splits") or tuple(builder.info.splits)
  pooled = Split.concatenate([read_split(builder, s) for s in pool_names])
  if protocol == "review_70_30":
    train_idx, test_idx = splits.stratified_split(
        pooled.labels, test_fraction=0.3, seed=input_cfg.split_seed)
  else:
    if pooled.subjects is None:
      raise ValueError(
          f"config.input.protocol='kfold' groups by subject, but dataset "
          f"{builder.name!r} has no 'subject' feature")
    folds = splits.subject_kfold(pooled.subjects, input_cfg.folds,
                                 seed=input_cfg.split_seed,
                                 labels=pooled.labels)
    train_idx, test_idx = folds[input_cfg.fold]
  parts = {"train": pooled.take(train_idx), "test": pooled.take(test_idx)}
  return {name: parts[name] for name in names}


def soft_labels(builder: Any) -> str | None:
  """How the builder's config trains on its soft targets, or None.

  A builder with a ``distribution`` feature names, in ``TRAIN_TARGETS``,
  what each of its configs makes of it (FER+: ``fer_plus.TRAIN_TARGETS``):
  ``"sample"``, a label drawn from the distribution at every step, or
  ``"distribution"``, the distribution itself as the loss's target.
  """
  if SOFT_TARGET_FEATURE not in builder.info.features:
    return None
  config = builder.builder_config.name if builder.builder_config else None
  mode = getattr(type(builder), "TRAIN_TARGETS", {}).get(config)
  if mode not in (None, *SOFT_LABEL_MODES):
    raise ValueError(f"{type(builder).__name__}.TRAIN_TARGETS[{config!r}] is "
                     f"{mode!r}; expected None or one of {SOFT_LABEL_MODES}")
  return mode


def dataset_info(builder: Any) -> DatasetInfo:
  return DatasetInfo(
      name=builder.name,
      version=str(builder.version),
      builder_config=builder.builder_config.name
      if builder.builder_config else None,
      class_names=tuple(builder.info.features["label"].names),
      image_shape=tuple(builder.info.features["image"].shape),
      split_sizes={k: v.num_examples for k, v in builder.info.splits.items()},
      data_dir=str(builder.data_dir),
      soft_labels=soft_labels(builder))
