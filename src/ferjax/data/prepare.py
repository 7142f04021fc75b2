"""``ferjax data prepare NAME``: build a dataset once, report what it holds.

Builds go through the builder classes (ferjax.data.registry), not TFDS's
global registry by string, whose name lookups reach for TensorFlow and GCS.
The counts reported are read back from the written array_record files, so
they check the build rather than echo the generator.
"""

import pathlib
import time
from typing import Any

import numpy as np

from ferjax.data import image_files
from ferjax.data import loading
from ferjax.data import registry


def _class_counts(builder: Any, split: str) -> dict[str, int]:
  source = builder.as_data_source(split)
  labels = np.array([ex["label"] for ex in
                     source.__getitems__(range(len(source)))], np.int64)
  names = builder.info.features["label"].names
  counts = np.bincount(labels, minlength=len(names))
  return {name: int(n) for name, n in zip(names, counts)}


def prepare(name: str, *, manual_dir: str | None = None,
            data_dir: str | None = None,
            config: str | None = None) -> dict[str, Any]:
  """Builds dataset `name` (unless already built) and summarises it.

  Returns name, config, version, data_dir (the built dataset's dir), built
  (whether this process built it), waited (another process built it
  meanwhile), seconds (build or wait time), splits (example counts),
  class_counts ({split: {class: count}}) and metadata (e.g. the `clean`
  config's removals).
  """
  configs = [c.name for c in registry.builder_class(name).BUILDER_CONFIGS]
  if config is not None and config not in configs:
    raise ValueError(f"{name} has no config {config!r}; its configs: "
                     f"{', '.join(configs) or 'none'}")
  builder = registry.make_builder(name, data_dir=data_dir,
                                  builder_config=config)
  needs_manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
  if manual_dir is not None:
    image_files.check_manual_dir(pathlib.Path(manual_dir).expanduser(), name)
  missing = not builder.is_prepared()
  if missing and needs_manual and manual_dir is None:
    raise ValueError(f"{name} needs --manual-dir:\n"
                     f"{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  start = time.perf_counter()
  builder, built = loading.prepare_builder(name, data_dir=data_dir,
                                           manual_dir=manual_dir,
                                           builder_config=config)
  seconds = time.perf_counter() - start
  splits = {split: info.num_examples
            for split, info in builder.info.splits.items()}
  summary = {
      "name": builder.name,
      "config": builder.builder_config.name if builder.builder_config else None,
      "version": str(builder.version),
      "data_dir": str(builder.data_dir),
      "built": built,
      # Missing at first, built by another process while this one waited.
      "waited": missing and not built,
      "seconds": seconds,
      "splits": splits,
      "class_counts": {s: _class_counts(builder, s) for s in splits},
      "metadata": dict(builder.info.metadata or {}),
  }
  return summary


def format_summary(summary: dict[str, Any]) -> str:
  """The summary as the table people compare with a PROVENANCE file."""
  config = f"/{summary['config']}" if summary["config"] else ""
  lines = [f"{summary['name']}{config} {summary['version']} at "
           f"{summary['data_dir']} ("
           + (f"built in {summary['seconds']:.1f} s" if summary["built"]
              else f"built by another process; waited "
              f"{summary['seconds']:.1f} s for it" if summary.get("waited")
              else "already built") + ")"]
  classes = list(next(iter(summary["class_counts"].values()), {}))
  width = max([len(c) for c in classes] + [8])
  lines.append(f"  {'split':<12} {'examples':>8} "
               + " ".join(f"{c:>{width}}" for c in classes))
  for split, n in summary["splits"].items():
    counts = summary["class_counts"][split]
    lines.append(f"  {split:<12} {n:>8,} "
                 + " ".join(f"{counts[c]:>{width},}" for c in classes))
  source = summary["metadata"].get("source")
  if source:
    lines.append(f"  read from {source}")
  clean = summary["metadata"].get("clean")
  if clean:
    lines.append(
        f"  clean removed {len(clean['removed_constant'])} constant images "
        f"(std < {clean['min_std']}) and "
        f"{len(clean['removed_test_in_train'])} test images also in train; "
        f"{len(clean['conflicting_label_groups'])} groups of identical "
        f"images have conflicting labels (kept); full lists in "
        f"{summary['data_dir']}/metadata.json")
  lines += _left_out_lines(summary)
  return "\n".join(lines)


def _left_out_lines(summary: dict[str, Any]) -> list[str]:
  """What a build left out and why (AffectNet's non-expressions, FER+'s
  unknown, an image folder's faces not found), so it is never silent."""
  metadata, lines = summary["metadata"], []
  for key in ("skipped", "dropped"):
    for split, counts in sorted((metadata.get(key) or {}).items()):
      if counts:
        lines.append(f"  {key} in {split}: " + ", ".join(
            f"{n} {why}" for why, n in sorted(counts.items())))
  for key, what in (("no_face", "no face found (not stored)"),
                    ("multiple_faces", "several faces (the best stored)")):
    files = metadata.get(key) or []
    if files:
      lines.append(f"  {what}: {len(files)} images: {', '.join(files[:10])}"
                   + (f" ... (all in {summary['data_dir']}/metadata.json)"
                      if len(files) > 10 else ""))
  for folder, n in sorted((metadata.get("left_out") or {}).items()):
    lines.append(f"  left out by classes.json: {folder}/ ({n} images)")
  return lines
