"""Materialises TFDS splits as uint8 arrays for the in-memory input path.

FER-sized datasets fit in device memory many times over, so the trainer
reads each split once (through ``tfds.data_source``, no TensorFlow) and keeps
it on the devices.
"""

import contextlib
import dataclasses
import fcntl
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from ferjax.data import registry


@dataclasses.dataclass(frozen=True)
class Split:
  """One split in memory: uint8 NHWC images and int32 labels."""

  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


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


@contextlib.contextmanager
def _lock(data_dir: pathlib.Path, name: str) -> Iterator[None]:
  """Serialises preparation so parallel trials never race on one cache."""
  data_dir.mkdir(parents=True, exist_ok=True)
  with open(data_dir / f".{name}.lock", "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def prepared_builder(name: str, *, data_dir: str | None = None,
                     manual_dir: str | None = None,
                     builder_config: str | None = None) -> Any:
  """A builder whose files exist, building them once if needed."""
  builder = registry.make_builder(name, data_dir=data_dir,
                                  builder_config=builder_config)
  with _lock(pathlib.Path(builder.data_dir_root), name):
    builder = registry.make_builder(name, data_dir=data_dir,
                                    builder_config=builder_config)
    if not builder.is_prepared():
      download_config = tfds.download.DownloadConfig(
          manual_dir=os.path.expanduser(manual_dir) if manual_dir else None)
      builder.download_and_prepare(download_config=download_config)
  return builder


def read_split(builder: Any, split: str) -> Split:
  """Reads a whole split (TFDS slicing allowed: ``train[:10%]``) into memory."""
  if split.split("[")[0] not in builder.info.splits:
    raise ValueError(
        f"dataset {builder.name!r} has no split {split!r}; it has "
        f"{', '.join(builder.info.splits.keys())}")
  source = builder.as_data_source(split=split)
  n = len(source)
  records = source.__getitems__(range(n)) if n else []
  shape = builder.info.features["image"].shape
  images = np.empty((n, *shape), np.uint8)
  labels = np.empty((n,), np.int32)
  for i, record in enumerate(records):
    images[i] = record["image"]
    labels[i] = record["label"]
  return Split(images, labels)


def dataset_info(builder: Any) -> DatasetInfo:
  return DatasetInfo(
      name=builder.name,
      version=str(builder.version),
      builder_config=builder.builder_config.name
      if builder.builder_config else None,
      class_names=tuple(builder.info.features["label"].names),
      image_shape=tuple(builder.info.features["image"].shape),
      split_sizes={k: v.num_examples for k, v in builder.info.splits.items()},
      data_dir=str(builder.data_dir))
