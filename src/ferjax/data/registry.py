"""Dataset names a config may use, mapped to their TFDS builder classes.

Builders are imported lazily: naming a dataset must not import every
builder's dependencies, and configs are validated before JAX starts.
"""

import importlib
import os
from typing import Any

DATASETS: dict[str, tuple[str, str]] = {
    "synthetic_fer": ("ferjax.data.synthetic_fer", "SyntheticFer"),
    "fer2013": ("ferjax.data.fer2013", "Fer2013"),
    "ck_plus": ("ferjax.data.ck_plus", "CkPlus"),
    "raf_db": ("ferjax.data.raf_db", "RafDb"),
    "affectnet": ("ferjax.data.affectnet", "AffectNet"),
    "fer_plus": ("ferjax.data.fer_plus", "FerPlus"),
    "jaffe": ("ferjax.data.jaffe", "Jaffe"),
    # With recognition: it crops faces with predict's detectors.
    "image_folder": ("ferjax.recognition.image_folder", "ImageFolder"),
}

# Evaluation protocols a config may name (see loading.load_partitions).
PROTOCOLS = ("official", "review_70_30", "kfold")


def builder_class(name: str) -> type:
  """The TFDS builder class registered as ``name``."""
  if name not in DATASETS:
    raise ValueError(
        f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
  module, cls = DATASETS[name]
  return getattr(importlib.import_module(module), cls)


def make_builder(name: str, *, data_dir: str | None = None,
                 builder_config: str | None = None) -> Any:
  """A builder writing array_record files, the format readable without TF."""
  kwargs: dict[str, Any] = {
      "data_dir": os.path.expanduser(data_dir) if data_dir else data_dir,
      "file_format": "array_record"}
  if builder_config:
    kwargs["config"] = builder_config
  return builder_class(name)(**kwargs)
