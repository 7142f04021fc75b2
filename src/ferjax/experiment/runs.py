"""Runs as ``ferjax report`` reads them: found, loaded, named and grouped.

Reads only what runs leave behind (through ``ferjax.run.run_dir``), so it
works on finished, running and copied runs alike; a run it cannot read is
kept with the reason. Runs that differ only in ``seed`` form seed groups.
"""

import dataclasses
import json
import math
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ferjax import config as config_lib
from ferjax.experiment import sweep as sweep_lib
from ferjax.metrics import HEADLINE as METRICS
from ferjax.run.run_dir import RECORD_FOLDERS, RunDir, RunDirError, read_json

_SKIP_DIRS = (*RECORD_FOLDERS, "plots")

# Filled in from the training data, not chosen: they differ between any two
# datasets or splits and say nothing about the recipe.
COMPUTED_FIELDS = ("input.mean", "input.std")


@dataclasses.dataclass
class Run:
  """A run directory's records, as written by ``ferjax train``."""

  name: str
  path: pathlib.Path
  config: dict[str, Any]
  manifest: dict[str, Any]
  events: list[dict[str, Any]]
  events_note: str | None = None  # A torn last line left out of events.

  @property
  def status(self) -> str:
    """The run's own state; for an unfinished trial, what its sweep says."""
    status = RunDir(self.path).status()
    trial = self.path / sweep_lib.STATUS_FILE
    if status == "unfinished" and trial.exists():
      try:
        return read_json(trial).get("status", status)
      except (RunDirError, AttributeError):
        return status
    return status

  @property
  def table_status(self) -> str:
    """``status`` as the tables show it: flagged when a torn last line of
    the metrics was left out, so that the finals are not the run's last."""
    if self.events_note:
      return f"{self.status}, metrics torn after step {self.final_step}"
    return self.status

  @property
  def is_reproduction(self) -> bool:
    """Made by ``ferjax reproduce``: a copy of a run, not another seed."""
    sessions = self.manifest.get("sessions") or [{}]
    return (sessions[0].get("command") or [])[1:2] == ["reproduce"]

  @property
  def final_step(self) -> int | None:
    return max((e["step"] for e in self.events), default=None)

  def eval_events(self, name: str) -> list[dict[str, Any]]:
    return [e for e in self.events if e["split"] == name]

  @property
  def eval_names(self) -> list[str]:
    """Evaluations in the order the run first logged them."""
    return list(dict.fromkeys(e["split"] for e in self.events
                              if e["split"] != "train"))

  @property
  def primary_eval(self) -> str | None:
    """The eval that picks the best checkpoint, else the first one logged."""
    best = self.config.get("checkpoint", {}).get("best_metric", "")
    name = best.split("/")[0]
    if name in self.eval_names:
      return name
    return self.eval_names[0] if self.eval_names else None

  @property
  def steps_per_epoch(self) -> int | None:
    """As training computed it (``setup.steps_per_epoch``); None if unknown."""
    sizes = self.manifest.get("dataset", {}).get("split_sizes_used") or {}
    batch = self.config.get("batch_size")
    if isinstance(sizes.get("train"), int) and isinstance(batch, int) and (
        batch > 0):
      return sizes["train"] // batch or None
    return None

  def sweep_axes(self) -> list[str] | None:
    """The fields this run's sweep varies, when it is a sweep's trial."""
    path = self.path.parent / sweep_lib.SWEEP_FILE
    try:
      trials = read_json(path).get("trials", []) if path.is_file() else None
    except (RunDirError, AttributeError):
      return None
    if trials is None:
      return None
    return list(dict.fromkeys(k for t in trials
                              for k in t.get("overrides", {})))


def find_runs(dirs: Iterable[str | os.PathLike]) -> list[pathlib.Path]:
  """Run directories (holding any record a run writes) under ``dirs``."""
  found = []
  for top in dirs:
    top = pathlib.Path(top)
    if not top.is_dir():
      raise FileNotFoundError(f"{top} is not a directory")
    for root, subdirs, files in os.walk(top):
      subdirs[:] = sorted(d for d in subdirs if d not in _SKIP_DIRS)
      if RunDir(root).is_run() or sweep_lib.STATUS_FILE in files:
        found.append(pathlib.Path(root).resolve())
  return list(dict.fromkeys(found))


@dataclasses.dataclass
class Unreadable:
  """A run directory the report could not read, and why."""

  name: str
  path: pathlib.Path
  reason: str


def read_run(name: str, path: pathlib.Path) -> Run:
  """A run's records; RunDirError or FileNotFoundError saying what is wrong."""
  run_dir = RunDir(path)
  config, _ = config_lib.upgrade(run_dir.read_config_dict())
  events, note = run_dir.read_events()
  return Run(name=name, path=path, config=config,
             manifest=run_dir.read_manifest(), events=events, events_note=note)


def load_all(dirs: Sequence[str | os.PathLike]
             ) -> tuple[list[Run], list[Unreadable]]:
  """Every run under ``dirs`` that can be read, and those that cannot.

  Runs are named by their path below the directories' common parent.
  """
  paths = find_runs(dirs)
  base = pathlib.Path(os.path.commonpath(
      [pathlib.Path(d).resolve() for d in dirs]))
  runs, unreadable = [], []
  for path in paths:
    name = str(path.relative_to(base)) if path != base else path.name
    if _not_started(path):
      continue  # A sweep's pending trial: its sweep's note lists it.
    try:
      runs.append(read_run(name, path))
    except (RunDirError, FileNotFoundError) as e:
      unreadable.append(Unreadable(name, path, str(e)))
  if not runs:
    raise FileNotFoundError(
        f"no run directories{' that can be read' if unreadable else ''} "
        f"under {', '.join(map(str, dirs))}"
        + "".join(f"\n  {u.path}: {u.reason}" for u in unreadable))
  return runs, unreadable


def _not_started(path: pathlib.Path) -> bool:
  """A sweep trial that has written no record of a run yet (pending, or
  starting): nothing to report, and nothing wrong."""
  trial = path / sweep_lib.STATUS_FILE
  if RunDir(path).has_config() or not trial.is_file():
    return False
  try:
    status = read_json(trial)
  except RunDirError:
    return False
  return isinstance(status, dict) and status.get("status") in (
      "pending", "running")


def load_runs(dirs: Sequence[str | os.PathLike]) -> list[Run]:
  """Every readable run under ``dirs`` (see ``load_all``)."""
  return load_all(dirs)[0]


def varying_fields(configs: Sequence[dict[str, Any]]) -> list[str]:
  """Dotted config fields whose values are not the same in every config.

  ``COMPUTED_FIELDS`` are left out: the data set them, not the recipe.
  """
  fields = set()
  for other in configs[1:]:
    fields.update(config_lib.differing_fields(configs[0], other))
  fields -= set(COMPUTED_FIELDS)
  return sorted(fields, key=lambda f: (f != "seed", f))


def config_fields(configs: Sequence[dict[str, Any]]) -> list[str]:
  """Every dotted leaf field of any config: what ``--columns`` may name."""
  def leaves(node: dict[str, Any], prefix: str) -> Iterable[str]:
    for key, value in node.items():
      if isinstance(value, dict) and value:
        yield from leaves(value, f"{prefix}{key}.")
      else:
        yield f"{prefix}{key}"
  return sorted(dict.fromkeys(f for c in configs for f in leaves(c, "")))


def _lookup(config: dict[str, Any], field: str) -> tuple[bool, Any]:
  node: Any = config
  for part in field.split("."):
    if not isinstance(node, dict) or part not in node:
      return False, None
    node = node[part]
  return True, node


def field_value(config: dict[str, Any], field: str) -> str:
  """A config field, exactly, for CSVs and keys; '-' where it is missing."""
  found, node = _lookup(config, field)
  if not found:
    return "-"
  return node if isinstance(node, str) else json.dumps(node)


def _rounded(node: Any) -> str:
  if isinstance(node, float):
    return f"{node:.4g}"
  if isinstance(node, (list, tuple)):
    return "[" + ", ".join(map(_rounded, node)) + "]"
  return node if isinstance(node, str) else json.dumps(node)


def field_cell(config: dict[str, Any], field: str) -> str:
  """A config field for a Markdown cell: floats to 4 significant digits."""
  found, node = _lookup(config, field)
  return _rounded(node) if found else "-"


def metric_columns(runs: Sequence[Run]) -> list[str]:
  """``<eval>/<metric>_final`` and ``_best`` for every eval of any run."""
  evals = dict.fromkeys(n for run in runs for n in run.eval_names)
  return [f"{ev}/{m}_{which}" for ev in evals for m in METRICS
          for which in ("final", "best")]


def select_columns(available: Sequence[str],
                   wanted: Sequence[str] | None,
                   fields: Sequence[str] = ()) -> tuple[list[str], list[str]]:
  """(config fields, metric columns) of ``wanted``, each in its own order.

  A paper's table wants a few columns (the family, PublicTest accuracy and
  macro F1 at the final step, say) out of every differing field and every
  eval's final and best metrics. ``available`` are the metric columns,
  ``fields`` the config fields that may be named; a part of ``wanted``
  naming none of its kind is ``[]`` (the caller's default).
  """
  if wanted is None:
    return [], list(available)
  unknown = [c for c in wanted if c not in available and c not in fields]
  if unknown or not wanted:
    raise ValueError(
        f"--columns: unknown column(s) {', '.join(unknown) or '(none given)'};"
        f" expected config fields (such as model.name, seed) or some of "
        f"{', '.join(available)}")
  wanted = list(dict.fromkeys(wanted))
  return ([c for c in wanted if c not in available],
          [c for c in wanted if c in available] or list(available))


def table_fields(runs: Sequence[Run], fields: Sequence[str]) -> list[str]:
  """The config columns shown by default: a sweep's axes, else ``fields``.

  Trials of one sweep whose recipes differ in many fields (one family's
  config against another's) are told apart by their names; their table
  shows what the sweep set (the seed), not every field of every recipe.
  """
  axes = [r.sweep_axes() for r in runs]
  if any(a is None for a in axes):
    return list(fields)
  wanted = {f for a in axes for f in a}
  return [f for f in fields if f in wanted]


def summarize(run: Run) -> dict[str, float]:
  """Final (last logged) and best value of each eval's accuracy, macro F1."""
  out = {}
  for ev in run.eval_names:
    events = sorted(run.eval_events(ev), key=lambda e: e["step"])
    for m in METRICS:
      values = [e[m] for e in events if m in e]
      if values:
        out[f"{ev}/{m}_final"] = float(values[-1])
        out[f"{ev}/{m}_best"] = float(max(values))
  return out


@dataclasses.dataclass
class Group:
  """Runs whose configs differ only in ``seed``, under one label."""

  label: str
  key: dict[str, str]
  runs: list[Run]

  @property
  def counted(self) -> list[Run]:
    """The finished runs (an unfinished run's last value is not its
    result); all of them while none has finished."""
    return [r for r in self.runs if r.status == "finished"] or self.runs


_NAME_PARTS = re.compile(r"([/,_-])")


def _shared_name(names: Sequence[str]) -> str:
  """What ``names`` share, the parts that differ dropped with a separator:
  ``alexnet-seed0, alexnet-seed1 -> alexnet``; '' when they do not align."""
  parts = [_NAME_PARTS.split(n) for n in names]
  if len({len(p) for p in parts}) != 1:
    return ""
  first, kept = parts[0], ""
  for i in range(0, len(first), 2):  # Names at even, separators at odd.
    if len({p[i] for p in parts}) == 1:
      kept += (first[i - 1] if kept else "") + first[i]
  return kept


def short_label(config: dict[str, Any], fields: Sequence[str]) -> str:
  """``learning_rate=0.05,depth=11``: the last part of each dotted field."""
  return ",".join(f"{f.rsplit('.', 1)[-1]}={field_cell(config, f)}"
                  for f in fields) or "all runs"


def run_groups(runs: Sequence[Run], fields: Sequence[str]) -> list[Group]:
  """Runs grouped by every field of ``fields`` but seed, in their order.

  A group of one is labelled by its run's name, a larger one by what its
  runs' names share (``alexnet`` for ``alexnet-seed0``, ``-seed1``), so a
  plot's legend reads like the table's first column; by the differing
  fields' values where names do not tell the groups apart. Reproductions
  are left out: they repeat a seed.
  """
  others = [f for f in fields if f != "seed"]
  grouped: dict[tuple[str, ...], list[Run]] = {}
  for run in runs:
    if not run.is_reproduction:
      key = tuple(field_value(run.config, f) for f in others)
      grouped.setdefault(key, []).append(run)
  labels = [_shared_name([r.name for r in members])
            for members in grouped.values()]
  if "" in labels or len(set(labels)) < len(labels):
    labels = [short_label(members[0].config, others)
              for members in grouped.values()]
  return [Group(label, dict(zip(others, key)), members)
          for label, (key, members) in zip(labels, grouped.items())]


@dataclasses.dataclass
class SeedGroup:
  """Runs whose configs differ only in ``seed``; statistics over finished."""

  label: str
  key: dict[str, str]
  runs: list[Run]
  mean: dict[str, float]
  std: dict[str, float]  # Sample standard deviation (ddof=1).
  n: int


def seed_groups(runs: Sequence[Run], fields: Sequence[str],
                columns: Sequence[str]) -> list[SeedGroup]:
  """Groups of 2+ runs that differ only in seed, with mean and std (ddof=1).

  Statistics are over the group's finished runs: an unfinished run's last
  value is not its result. Reproductions are left out: they repeat a seed.
  """
  if "seed" not in fields:
    return []
  groups = []
  for group in run_groups(runs, fields):
    if len(group.runs) < 2:
      continue
    finished = [summarize(r) for r in group.runs if r.status == "finished"]
    mean, std = {}, {}
    for col in columns:
      values = [s[col] for s in finished if col in s]
      if values:
        mean[col] = float(np.mean(values))
        std[col] = float(np.std(values, ddof=1)) if len(values) > 1 else (
            math.nan)
    groups.append(SeedGroup(group.label, group.key, group.runs, mean, std,
                            len(finished)))
  return groups
