"""``ferjax report``: one table and a few plots for a set of run directories.

Reads only what runs leave behind (through ``ferjax.run.run_dir``), so it
works on finished, running and copied runs alike; a run it cannot read is listed
with the reason, and the rest are still reported. The table shows the
config fields that differ between runs (a sweep's: its axes), left out those
computed from the data; runs that differ only in ``seed`` are also
summarised as mean and sample standard deviation over seeds, the number a
paper reports. Plots name each line by its run (or, for runs that differ
only in seed, by what their names share), as the table's first column does.
"""

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ferjax import atomic
from ferjax import config as config_lib
from ferjax.experiment import sweep as sweep_lib
from ferjax.run.run_dir import RECORD_FOLDERS, RunDir, RunDirError, read_json
from ferjax.run.manifest import now
from ferjax.experiment import calibration_plots
from ferjax.train.metrics import HEADLINE as METRICS
from ferjax.train.metrics import class_distribution

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


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return "-" if math.isnan(value) else f"{value:.4f}"
  return str(value).replace("|", "\\|")


def _markdown_table(header: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> str:
  lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
           "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(header)
  writer.writerows(rows)
  return buf.getvalue()


def _save_png(fig: Figure, path: pathlib.Path) -> None:
  """Saves atomically: a reader never sees half a PNG."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  atomic.write_bytes(path, buffer.getvalue())


def _selected_event(run: Run, eval_name: str | None,
                    step: int | None) -> dict[str, Any] | None:
  """The eval event a confusion matrix shows: final one unless chosen."""
  name = eval_name or run.primary_eval
  events = [e for e in run.eval_events(name or "")
            if "confusion_matrix" in e and (step is None or e["step"] == step)]
  return max(events, key=lambda e: e["step"]) if events else None


def _class_names(run: Run, event: dict[str, Any]) -> list[str]:
  if event.get("per_class_accuracy"):
    return list(event["per_class_accuracy"])
  names = run.manifest.get("dataset", {}).get("class_names")
  return names or [str(i) for i in range(len(event["confusion_matrix"]))]


def _x_axis(runs: Sequence[Run]) -> tuple[str, dict[str, float]]:
  """Epochs when every run's steps per epoch is known (families with other
  batch sizes line up), else steps; the divisor of each run's steps."""
  spe = {r.name: r.steps_per_epoch for r in runs}
  if spe and all(spe.values()):
    return "epoch", {name: float(n) for name, n in spe.items()}
  return "step", {name: 1.0 for name in spe}


def _curve(run: Run, split: str, metric: str,
           per: float = 1.0) -> dict[float, float]:
  return {e["step"] / per: float(e[metric]) for e in run.events
          if e["split"] == split and metric in e}


def _plot_group(ax: Any, group: Group, split: str, metric: str, color: str,
                per: dict[str, float]) -> None:
  """Mean over the group's runs with a ± std band; each run thin beneath.

  The mean is over the finished runs (as the report's seed statistics are)
  when there are any, at the steps all of them logged. Every logged value is
  a marker too, so a run with one logged point still shows.
  """
  every = [c for run in group.runs
           if (c := _curve(run, split, metric, per[run.name]))]
  curves = [c for run in group.counted
            if (c := _curve(run, split, metric, per[run.name]))]
  if not curves:
    return
  if len(every) > 1:
    for c in every:
      ax.plot(*zip(*sorted(c.items())), color=color, alpha=0.25, lw=0.6)
  steps = sorted(set.intersection(*(set(c) for c in curves)))
  values = np.array([[c[s] for s in steps] for c in curves])
  mean = values.mean(axis=0)
  n = f" (n={len(curves)})" if len(curves) > 1 else ""
  ax.plot(steps, mean, color=color, marker="o", ms=3 if len(steps) > 20 else 4,
          label=group.label + n)
  if len(curves) > 1:
    std = values.std(axis=0, ddof=1)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2,
                    lw=0)


def _legend_below(fig: Figure, handles: Sequence[Any],
                  labels: Sequence[str]) -> None:
  """A figure legend under the axes that is never cut off nor on the data.

  The figure grows by the legend's height (and to its width, with as many
  columns as fit), so constrained layout never has to squeeze the axes.
  """
  renderer = FigureCanvasAgg(fig).get_renderer()
  width, height = fig.get_size_inches()
  ncols = min(len(labels), 4)
  while True:
    legend = fig.legend(handles, labels, loc="outside lower center",
                        ncols=ncols, fontsize="small")
    box = legend.get_window_extent(renderer)
    if box.width / fig.dpi + 0.3 <= width or ncols == 1:
      break
    legend.remove()
    ncols -= 1
  fig.set_size_inches(max(width, box.width / fig.dpi + 0.3),
                      height + box.height / fig.dpi + 0.1)


def _room_for(fig: Figure, texts: Sequence[Any]) -> None:
  """Grows the figure by the extent of ``texts`` (long tick labels), so
  constrained layout never squeezes the axes to nothing."""
  renderer = FigureCanvasAgg(fig).get_renderer()
  boxes = [t.get_window_extent(renderer) for t in texts if t.get_text()]
  if boxes:
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + max(b.width for b in boxes) / fig.dpi,
                        height + max(b.height for b in boxes) / fig.dpi)


def plot_learning_curves(runs: Sequence[Run],
                         fields: Sequence[str]) -> Figure:
  """Training loss and accuracy per logged step, and each eval's accuracy.

  Runs that differ only in ``seed`` are one line (mean, ± std band, the
  single runs thin); lines are labelled as ``run_groups`` names them; the
  legend sits below the axes, never on the data. Train curves are per
  logged step, so a one-epoch run is a curve too.
  """
  groups = run_groups(runs, fields)
  x_name, per = _x_axis([r for g in groups for r in g.runs])
  evals = list(dict.fromkeys(n for r in runs for n in r.eval_names))[:3]
  panels = [("train", "loss", "Training loss"),
            ("train", "accuracy", "Training accuracy")]
  panels += [(ev, "accuracy", f"{ev} accuracy") for ev in evals]
  fig = Figure(figsize=(4.2 * len(panels), 4.2), layout="constrained")
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (split, metric, title) in zip(axes, panels):
    for i, group in enumerate(groups):
      _plot_group(ax, group, split, metric, f"C{i % 10}", per)
    ax.set(xlabel=x_name, ylabel=metric, title=title)
    # From 0 on both axes, with room for the last point's marker: a run of
    # one epoch is a point at (1, value), not a dot on an axis of 0.99-1.01.
    ends = [x for line in ax.lines for x in line.get_xdata()]
    ax.set_xlim(0, 1.05 * max(ends, default=1) or 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
  handles, labels = axes[-1].get_legend_handles_labels()
  if not handles:
    handles, labels = axes[0].get_legend_handles_labels()
  if handles:
    _legend_below(fig, handles, labels)
  return fig


def plot_confusion(run: Run, event: dict[str, Any],
                   path: pathlib.Path) -> None:
  """Counts, coloured by the fraction of each true class."""
  cm = np.asarray(event["confusion_matrix"])
  fraction = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
  names = _class_names(run, event)
  fig = Figure(figsize=(6, 5.5), layout="constrained")
  ax = fig.subplots()
  image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
  for i, j in np.ndindex(cm.shape):
    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
            color="white" if fraction[i, j] > 0.5 else "black")
  ticks = range(len(names))
  ax.set_xticks(ticks, labels=names, rotation=45, ha="right")
  ax.set_yticks(ticks, labels=names)
  ax.set(xlabel="predicted", ylabel="true")
  ax.set_title(f"{run.name}\n{event['split']} at step {event['step']}: "
               f"accuracy {event.get('accuracy', math.nan):.4f}",
               fontsize="small")
  fig.colorbar(image, ax=ax, label="fraction of the true class")
  _save_png(fig, path)


def _spread(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample std (0 for one value: no spread to draw)."""
  return (float(np.mean(values)),
          float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)


def _group_bars(ax: Any, x: np.ndarray, series: Sequence[Sequence[Sequence[
    float]]], labels: Sequence[str], *, annotate: bool) -> None:
  """Side-by-side bars at ``x``: series[i][j] are the values (one a run) of
  bar i at position j, drawn as their mean, ± std and each value a dot."""
  width = 0.8 / len(series)
  for i, (values, label) in enumerate(zip(series, labels)):
    where = x - 0.4 + (i + 0.5) * width
    stats = [_spread(v) if v else (math.nan, 0.0) for v in values]
    spread = [s if len(v) > 1 else math.nan for v, (_, s) in
              zip(values, stats)]  # No bar of zero length for one run.
    bars = ax.bar(where, [m for m, _ in stats], width, label=label,
                  color=f"C{i % 10}", yerr=spread,
                  error_kw={"lw": 1, "capsize": 2})
    for pos, v in zip(where, values):
      if len(v) > 1:
        ax.plot([pos] * len(v), v, "k.", ms=3)
    if annotate:
      ax.bar_label(bars, labels=[f"{m:.3f}" if not math.isnan(m) else ""
                                 for m, _ in stats], fontsize=7, padding=2)


def plot_per_class(selected: Sequence[tuple[Run, dict[str, Any]]],
                   fields: Sequence[str]) -> Figure:
  """Per-class accuracy, one bar per group (mean over its seeds, ± std, each
  seed a dot) in each class; the legend below."""
  events = {run.name: event for run, event in selected}
  groups = [g for g in run_groups([r for r, _ in selected], fields)]
  names = list(dict.fromkeys(
      c for run, event in selected for c in _class_names(run, event)))
  x = np.arange(len(names))
  splits = {event["split"] for _, event in selected}
  steps = {event["step"] for _, event in selected}
  fig = Figure(figsize=(max(8.0, 0.3 * len(names) * len(groups) + 2), 4.5),
               layout="constrained")
  ax = fig.subplots()
  series = [[[events[r.name].get("per_class_accuracy", {}).get(c, math.nan)
              for r in g.counted] for c in names] for g in groups]
  series = [[[v for v in vs if not math.isnan(v)] for vs in s]
            for s in series]
  _group_bars(ax, x, series, [g.label + (f" (n={len(g.counted)})"
                                          if len(g.counted) > 1 else "")
                              for g in groups], annotate=False)
  ax.set_xticks(x, labels=names)
  title = "Per-class accuracy"
  if len(splits) == 1:
    title += f" on {next(iter(splits))}"
  title += (f" at step {next(iter(steps))}" if len(steps) == 1
            else ", each run's final evaluation"
            if all(e["step"] == r.final_step for r, e in selected) else "")
  ax.set(ylabel="accuracy", ylim=(0, 1.05), title=title)
  ax.grid(axis="y", alpha=0.3)
  _legend_below(fig, *ax.get_legend_handles_labels())
  return fig


_METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro F1"}


def plot_comparison(runs: Sequence[Run], fields: Sequence[str]) -> Figure:
  """Each group's final accuracy and macro F1 on each evaluation: the
  families of a review side by side, mean over seeds, ± std, each seed a
  dot, the mean written on its bar."""
  groups = run_groups(runs, fields)
  evals = list(dict.fromkeys(n for r in runs for n in r.eval_names))[:4]
  fig = Figure(figsize=(max(4.0, 1.1 * len(groups) + 1.5) * len(evals), 4.5),
               layout="constrained")
  axes = fig.subplots(1, len(evals), squeeze=False)[0]
  x = np.arange(len(groups))
  for ax, ev in zip(axes, evals):
    summaries = [[summarize(r) for r in g.counted] for g in groups]
    series = [[[s[f"{ev}/{m}_final"] for s in ss if f"{ev}/{m}_final" in s]
               for ss in summaries] for m in METRICS]
    _group_bars(ax, x, series, [_METRIC_NAMES.get(m, m) for m in METRICS],
                annotate=True)
    ax.set_xticks(x, labels=[g.label for g in groups],
                  rotation=30 if len(groups) > 3 else 0,
                  ha="right" if len(groups) > 3 else "center")
    ax.set(title=f"{ev} (final)", ylim=(0, 1.1))
    ax.grid(axis="y", alpha=0.3)
  _room_for(fig, axes[0].get_xticklabels())
  _legend_below(fig, *axes[0].get_legend_handles_labels())
  return fig


def _failed_trials(dirs: Sequence[str | os.PathLike]) -> list[str]:
  """Sweep trials under ``dirs`` that did not finish, for a note."""
  out = []
  for top in dirs:
    for path in sorted(pathlib.Path(top).rglob(sweep_lib.SWEEP_FILE)):
      try:
        trials = read_json(path).get("trials", [])
      except (RunDirError, AttributeError) as e:
        out.append(f"{path}: unreadable ({e})")
        continue
      for trial in trials:
        if trial.get("status") != "finished":
          out.append(f"{path.parent / trial['name']}: {trial['status']} "
                     f"(exit {trial.get('returncode')}; see its "
                     f"{sweep_lib.STATUS_FILE})")
  return out


def _seed_section(groups: Sequence[SeedGroup], fields: Sequence[str],
                  shown: Sequence[str], columns: Sequence[str],
                  out: pathlib.Path) -> str:
  """Writes report_seeds.csv; returns the Markdown table (if any groups).

  The CSV keys each group by every differing field, the table by its label
  and the ``shown`` fields.
  """
  others = [f for f in fields if f != "seed"]
  shown = [f for f in shown if f != "seed"]
  rows, csv_rows = [], []
  for g in groups:
    seeds = ", ".join(field_value(r.config, "seed") for r in g.runs
                      if r.status == "finished")
    cells = [(f"{g.mean[c]:.4f} ± {_cell(g.std[c])}" if c in g.mean else "-")
             for c in columns]
    rows.append([g.label, *(field_cell(g.runs[0].config, f) for f in shown),
                 g.n, seeds, *cells])
    csv_rows.append([g.label, *g.key.values(), g.n, seeds, *(
        x for c in columns for x in (g.mean.get(c, ""), g.std.get(c, "")))])
  atomic.write_text(out / "report_seeds.csv", _csv(
      ["group", *others, "n", "seeds",
       *(f"{c}_{s}" for c in columns for s in ("mean", "std"))], csv_rows))
  if not groups:
    return ""
  return ("\n## Over seeds\n\nRuns that differ only in `seed`: mean ± sample "
          "standard deviation (ddof=1) over the finished runs of each group "
          "(reproductions left out).\n\n"
          + _markdown_table(["group", *shown, "n", "seeds", *columns], rows)
          + "\n")


def _calibration_section(selected: Sequence[tuple[Run, dict[str, Any]]],
                         runs: Sequence[Run], plots: pathlib.Path,
                         images: list[str]) -> str:
  """Predicted against true class shares of the confusion matrices shown,
  and each calibrated run's temperature, NLL and ECE (its reliability
  diagram appended to ``images``)."""
  text = ""
  if selected:
    names = _class_names(*selected[0])
    rows, seen = [], set()
    for run, event in selected:
      true, predicted = class_distribution(event["confusion_matrix"])
      if event["split"] not in seen and len(true) == len(names):
        seen.add(event["split"])
        rows.append(["(true share)", event["split"],
                     *(f"{100 * v:.1f}%" for v in true)])
      rows.append([run.name, event["split"],
                   *(f"{100 * v:.1f}%" for v in predicted)])
    text += ("\n## Predicted classes\n\nHow often each class is predicted "
             "(and occurs) in the evaluation of the confusion matrices "
             "below: a model that always says one class shows 100% in one "
             "column.\n\n" + _markdown_table(["run", "split", *names], rows)
             + "\n")
  rows = []
  for run in runs:
    record = RunDir(run.path).read_calibration()
    if record is None:
      continue
    rows.append([run.name, f"{record['temperature']:.4f}", record["split"],
                 record["step"], f"{record['nll']:.4f} -> "
                 f"{record['nll_calibrated']:.4f}", f"{record['ece']:.4f} -> "
                 f"{record['ece_calibrated']:.4f}"])
    file = f"reliability_{sweep_lib.safe_name(run.name)}.png"
    calibration_plots.write_reliability_diagram(
        record, plots / file, f"{run.name}: reliability on {record['split']}")
    images.append(f"![Reliability diagram of {run.name}](plots/{file})")
  if rows:
    text += ("\n## Calibration\n\nTemperature scaling fitted by `ferjax "
             "calibrate` (softmax(logits / T)); NLL and ECE (15 bins) on the "
             "split it was fitted on, before -> after.\n\n"
             + _markdown_table(["run", "T", "fitted on", "step", "NLL",
                                "ECE"], rows) + "\n")
  return text


def write_report(dirs: Sequence[str | os.PathLike],
                 out: str | os.PathLike | None = None, *,
                 eval_name: str | None = None,
                 step: int | None = None,
                 columns: Sequence[str] | None = None) -> str:
  """Writes report.md, report.csv, seed groups and plots; returns the tables.

  ``eval_name`` and ``step`` choose the evaluation shown as confusion
  matrices and per-class accuracy (default: each run's checkpoint-selecting
  eval at its final step). ``columns`` are the config fields and metric
  columns of the tables and CSVs (``select_columns``; default: the sweep's
  axes or the differing fields, and every metric column).
  """
  runs, unreadable = load_all(dirs)
  out = pathlib.Path(out if out is not None else dirs[0])
  fields = varying_fields([r.config for r in runs])
  chosen, columns = select_columns(metric_columns(runs), columns,
                                   config_fields([r.config for r in runs]))
  shown = chosen or table_fields(runs, fields)
  csv_fields = chosen or fields
  header = ["run", *shown, "status", "step", *columns]
  rows, csv_rows = [], []
  for run in runs:
    summary = summarize(run)
    metrics = [summary.get(c, math.nan) for c in columns]
    rows.append([run.name, *(field_cell(run.config, f) for f in shown),
                 run.status, run.final_step, *metrics])
    csv_rows.append([run.name, *(field_value(run.config, f)
                                 for f in csv_fields),
                     run.status, run.final_step,
                     *("" if math.isnan(v) else v for v in metrics)])
  atomic.write_text(out / "report.csv", _csv(
      ["run", *csv_fields, "status", "step", *columns], csv_rows))
  tables = "## Runs\n\n" + _markdown_table(header, rows) + "\n"
  hidden = [f for f in fields if f not in shown]
  if hidden and not chosen:
    tables += (f"\n{len(hidden)} more config fields differ between the runs "
               "(their recipes); report.csv has them all, `--columns` "
               "chooses.\n")

  tables += _seed_section(seed_groups(runs, fields, columns), fields,
                          shown, columns, out)

  plots = out / "plots"
  _save_png(plot_learning_curves(runs, fields), plots / "learning_curves.png")
  images = ["![Learning curves](plots/learning_curves.png)"]
  selected = [(run, event) for run in runs
              if (event := _selected_event(run, eval_name, step))]
  if selected:
    _save_png(plot_per_class(selected, fields),
              plots / "per_class_accuracy.png")
    images.append("![Per-class accuracy](plots/per_class_accuracy.png)")
  if any(r.eval_names for r in runs):
    _save_png(plot_comparison(runs, fields), plots / "comparison.png")
    images.insert(1, "![Final metrics per run or seed group]"
                  "(plots/comparison.png)")
  for run, event in selected:
    file = f"confusion_{sweep_lib.safe_name(run.name)}.png"
    plot_confusion(run, event, plots / file)
    images.append(f"![Confusion matrix of {run.name}](plots/{file})")
  missing = [r.name for r in runs if all(r is not s for s, _ in selected)]
  # In report.md only: the printed tables stay the run tables.
  sections = _calibration_section(selected, runs, plots, images)

  notes = [f"- {u.name}: not reported, unreadable: {u.reason}"
           for u in unreadable]
  notes += [f"- {r.name}: {r.events_note}" for r in runs if r.events_note]
  notes += [f"- {line}" for line in _failed_trials(dirs)]
  notes += [f"- {name}: no {eval_name or 'eval'} confusion matrix"
            f"{f' at step {step}' if step is not None else ''}"
            for name in missing]
  markdown = (
      f"# ferjax report\n\n{len(runs)} runs under "
      f"{', '.join(f'`{d}`' for d in dirs)}, {now()}"
      f"{f' ({len(unreadable)} unreadable: see Notes)' if unreadable else ''}"
      ". Columns: the config "
      "fields that differ between runs (or those chosen); final (last "
      "logged) and best value of each evaluation's metrics.\n\n" + tables +
      sections +
      ("\n## Notes\n\n" + "\n".join(notes) + "\n" if notes else "") +
      "\n## Plots\n\n" + "\n\n".join(images) + "\n")
  atomic.write_text(out / "report.md", markdown)
  if unreadable:
    tables += "\n## Not reported (unreadable)\n\n" + "".join(
        f"- {u.path}: {u.reason}\n" for u in unreadable)
  return tables
