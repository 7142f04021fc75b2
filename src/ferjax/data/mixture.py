"""Training on several datasets at once: ``input.mixture``.

The run's own dataset (``input.dataset``) gives the classes, the evaluation
splits and the train split; each mixture entry adds one split of another
dataset to the train split, its labels matched to the run's classes by name
(``labels.canonical_name``: RAF-DB's and FER2013's ``angry`` are one class)
and its size scaled by ``weight``: 2.0 takes every example twice, 0.5 a
seeded half, so a small own folder can count as much as FER2013. A class
the run does not have is an error unless the entry names it in
``drop_classes``; what each entry gave is recorded in the manifest.

An entry: ``{"dataset": "image_folder", "builder_config": "aligned",
"data_dir": ..., "manual_dir": ..., "split": "train", "weight": 1.0,
"drop_classes": ()}``; all keys but ``dataset`` are optional.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ferjax.labels import canonical_name

if TYPE_CHECKING:  # Configs are checked without importing TFDS.
  from ferjax.data import loading

KEYS = ("dataset", "builder_config", "data_dir", "manual_dir", "split",
        "weight", "drop_classes")


@dataclasses.dataclass(frozen=True)
class Part:
  """One ``input.mixture`` entry."""

  dataset: str
  builder_config: str | None = None
  data_dir: str | None = None
  manual_dir: str | None = None
  split: str = "train"
  weight: float = 1.0
  drop_classes: tuple[str, ...] = ()

  @classmethod
  def from_entry(cls, entry: Mapping[str, Any], where: str) -> "Part":
    entry = dict(entry)
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
      raise ValueError(f"{where}: unknown key(s) {unknown}; expected "
                       f"{', '.join(KEYS)}")
    if "dataset" not in entry:
      raise ValueError(f"{where}: lacks 'dataset'")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or \
        not 0 < weight < float("inf"):
      raise ValueError(f"{where}.weight: expected a positive number, got "
                       f"{weight!r}")
    return cls(**{**entry, "weight": float(weight), "drop_classes": tuple(
        entry.get("drop_classes") or ())})


def parts(mixture: Sequence[Mapping[str, Any]] | None) -> list[Part]:
  """The checked entries of ``input.mixture``."""
  return [Part.from_entry(e, f"input.mixture[{i}]")
          for i, e in enumerate(mixture or ())]


def _key(name: str) -> str:
  return canonical_name(name) or name.strip().lower()


def relabel(split: loading.Split, names: Sequence[str],
            run_classes: Sequence[str], drop: Sequence[str],
            where: str) -> tuple[loading.Split, dict[str, int]]:
  """``split`` (classes ``names``) in the run's class indices, examples of
  ``drop`` classes left out (returned as counts by class); soft targets
  move to the run's columns, the dropped classes' share spread over the
  rest."""
  from ferjax.data import loading
  run_keys = [_key(c) for c in run_classes]
  drop_keys = {_key(c) for c in drop}
  counts = np.bincount(split.labels, minlength=len(names))
  to_run = np.full(len(names), -1, np.int64)
  dropped = {}
  for i, name in enumerate(names):
    if _key(name) in drop_keys:
      dropped[name] = int(counts[i])
    elif _key(name) in run_keys:
      to_run[i] = run_keys.index(_key(name))
    elif counts[i]:
      raise ValueError(
          f"{where}: class {name!r} ({counts[i]} examples) is none of the "
          f"run's classes ({', '.join(run_classes)}); add it to the entry's "
          "drop_classes to leave it out")
  keep = to_run[split.labels] >= 0
  kept = split.take(np.flatnonzero(keep))
  targets = None
  if kept.targets is not None:  # Soft targets follow, renormalised.
    columns = np.flatnonzero(to_run >= 0)
    targets = np.zeros((len(kept), len(run_classes)), np.float32)
    targets[:, to_run[columns]] = kept.targets[:, columns]
    targets /= targets.sum(1, keepdims=True)
  return loading.Split(kept.images, to_run[kept.labels].astype(np.int32),
                       kept.subjects, targets), dropped


def scale(split: loading.Split, weight: float, seed: Sequence[int]
          ) -> loading.Split:
  """``round(weight * n)`` examples: every one ``floor(weight)`` times,
  then a seeded sample of the rest without repeats."""
  n = len(split)
  total = int(round(weight * n))
  whole, rest = divmod(total, n) if n else (0, 0)
  extra = np.random.default_rng(seed).permutation(n)[:rest]
  return split.take(np.concatenate([np.tile(np.arange(n), whole),
                                    np.sort(extra)]).astype(np.int64))


def mix(train: loading.Split, info: loading.DatasetInfo,
        mixture: Sequence[Mapping[str, Any]], seed: int
        ) -> tuple[loading.Split, list[dict[str, Any]]]:
  """The run's train split with every mixture entry added, and the record
  of what each gave (for the manifest)."""
  from ferjax.data import loading
  splits, records = [train], []
  for i, part in enumerate(parts(mixture)):
    where = f"input.mixture[{i}] ({part.dataset})"
    builder = loading.prepared_builder(
        part.dataset, data_dir=part.data_dir, manual_dir=part.manual_dir,
        builder_config=part.builder_config)
    other = loading.dataset_info(builder)
    if tuple(other.image_shape) != tuple(info.image_shape):
      raise ValueError(f"{where}: stores {other.image_shape} images, "
                       f"{info.name} {info.image_shape}; they cannot be "
                       "mixed")
    read = loading.read_split(builder, part.split)
    relabelled, dropped = relabel(read, other.class_names, info.class_names,
                                  part.drop_classes, where)
    used = scale(relabelled, part.weight, [seed, i])
    splits.append(used)
    records.append({
        "dataset": other.name, "builder_config": other.builder_config,
        "version": other.version, "split": part.split,
        "weight": part.weight, "examples": len(read),
        "dropped": dropped, "used": len(used),
        "class_counts": dict(zip(info.class_names, map(int, np.bincount(
            used.labels, minlength=len(info.class_names)))))})
  return loading.Split.concatenate(splits), records
