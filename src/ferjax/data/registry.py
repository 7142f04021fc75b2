"""Dataset names a config may use, mapped to their TFDS builder classes.

Builders are imported lazily: naming a dataset must not import every
builder's dependencies, and configs are validated before JAX starts. A new
dataset is its builder module and one ``DatasetSpec`` line in ``DATASETS``.
"""

import dataclasses
import importlib
import os
from typing import Any


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Where a dataset's TFDS builder class lives."""

  module: str
  cls: str


DATASETS: dict[str, DatasetSpec] = {
    "synthetic_fer": DatasetSpec("ferjax.data.synthetic_fer", "SyntheticFer"),
    "fer2013": DatasetSpec("ferjax.data.fer2013", "Fer2013"),
    "ck_plus": DatasetSpec("ferjax.data.ck_plus", "CkPlus"),
    "raf_db": DatasetSpec("ferjax.data.raf_db", "RafDb"),
    "affectnet": DatasetSpec("ferjax.data.affectnet", "AffectNet"),
    "fer_plus": DatasetSpec("ferjax.data.fer_plus", "FerPlus"),
    "jaffe": DatasetSpec("ferjax.data.jaffe", "Jaffe"),
    # With recognition: it crops faces with predict's detectors.
    "image_folder": DatasetSpec("ferjax.recognition.image_folder",
                                "ImageFolder"),
}

# Evaluation protocols a config may name (see loading.load_partitions).
PROTOCOLS = ("official", "review_70_30", "kfold")


def builder_class(name: str) -> type:
  """The TFDS builder class registered as ``name``."""
  if name not in DATASETS:
    raise ValueError(
        f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
  spec = DATASETS[name]
  return getattr(importlib.import_module(spec.module), spec.cls)


def make_builder(name: str, *, data_dir: str | None = None,
                 builder_config: str | None = None) -> Any:
  """A builder writing array_record files, the format readable without TF."""
  kwargs: dict[str, Any] = {
      "data_dir": os.path.expanduser(data_dir) if data_dir else data_dir,
      "file_format": "array_record"}
  if builder_config:
    kwargs["config"] = builder_config
  return builder_class(name)(**kwargs)
