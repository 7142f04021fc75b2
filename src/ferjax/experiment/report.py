"""``ferjax report``: one table and a few plots for a set of run directories.

Reads only what runs leave behind (through ``ferjax.run.run_dir``), so it
works on finished, running and copied runs alike; a run it cannot read is listed
with the reason, and the rest are still reported. The table shows the
config fields that differ between runs, so a sweep's table is its axes; runs
that differ only in ``seed`` are also summarised as mean and sample standard
deviation over seeds, the number a paper reports.
"""

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ferjax import atomic
from ferjax import config as config_lib
from ferjax.experiment import sweep as sweep_lib
from ferjax.run.run_dir import RECORD_FOLDERS, RunDir, RunDirError, read_json
from ferjax.run.manifest import now
from ferjax.train.metrics import HEADLINE as METRICS

_SKIP_DIRS = (*RECORD_FOLDERS, "plots")


@dataclasses.dataclass
class Run:
  """A run directory's records, as written by ``ferjax train``."""

  name: str
  path: pathlib.Path
  config: dict[str, Any]
  manifest: dict[str, Any]
  events: list[dict[str, Any]]

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
  return Run(name=name, path=path, config=config,
             manifest=run_dir.read_manifest(), events=run_dir.events())


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
  """Dotted config fields whose values are not the same in every config."""
  fields = set()
  for other in configs[1:]:
    fields.update(config_lib.differing_fields(configs[0], other))
  return sorted(fields, key=lambda f: (f != "seed", f))


def field_value(config: dict[str, Any], field: str) -> str:
  """A config field for a table cell; '-' where the config lacks it."""
  node: Any = config
  for part in field.split("."):
    if not isinstance(node, dict) or part not in node:
      return "-"
    node = node[part]
  return node if isinstance(node, str) else json.dumps(node)


def metric_columns(runs: Sequence[Run]) -> list[str]:
  """``<eval>/<metric>_final`` and ``_best`` for every eval of any run."""
  evals = dict.fromkeys(n for run in runs for n in run.eval_names)
  return [f"{ev}/{m}_{which}" for ev in evals for m in METRICS
          for which in ("final", "best")]


def select_columns(available: Sequence[str],
                   wanted: Sequence[str] | None) -> list[str]:
  """``wanted`` in its own order (all of ``available`` when None).

  A paper's table wants a few columns (PublicTest accuracy and macro F1 at
  the final step, say) out of every eval's final and best metrics.
  """
  if wanted is None:
    return list(available)
  unknown = [c for c in wanted if c not in available]
  if unknown or not wanted:
    raise ValueError(
        f"--columns: unknown column(s) {', '.join(unknown) or '(none given)'};"
        f" expected some of {', '.join(available)}")
  return list(dict.fromkeys(wanted))


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
class SeedGroup:
  """Runs whose configs differ only in ``seed``; statistics over finished."""

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
  others = [f for f in fields if f != "seed"]
  grouped: dict[tuple[str, ...], list[Run]] = {}
  for run in runs:
    if run.is_reproduction:
      continue
    key = tuple(field_value(run.config, f) for f in others)
    grouped.setdefault(key, []).append(run)
  groups = []
  for key, members in grouped.items():
    if len(members) < 2:
      continue
    finished = [summarize(r) for r in members if r.status == "finished"]
    mean, std = {}, {}
    for col in columns:
      values = [s[col] for s in finished if col in s]
      if values:
        mean[col] = float(np.mean(values))
        std[col] = float(np.std(values, ddof=1)) if len(values) > 1 else (
            math.nan)
    groups.append(SeedGroup(dict(zip(others, key)), members, mean, std,
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


def short_label(config: dict[str, Any], fields: Sequence[str]) -> str:
  """``lr=0.05,depth=11``: the last part of each dotted field, for legends."""
  return ",".join(f"{f.rsplit('.', 1)[-1]}={field_value(config, f)}"
                  for f in fields) or "all runs"


def _curve(run: Run, split: str, metric: str) -> dict[int, float]:
  return {e["step"]: float(e[metric]) for e in run.events
          if e["split"] == split and metric in e}


def _plot_group(ax: Any, members: Sequence[Run], split: str, metric: str,
                color: str, label: str, marker: str | None) -> None:
  """Mean over the group's runs with a ± std band; each run thin beneath.

  The mean is over the finished runs (as the report's seed statistics are)
  when there are any, at the steps all of them logged.
  """
  finished = [r for r in members if r.status == "finished"] or members
  every = [c for run in members if (c := _curve(run, split, metric))]
  curves = [c for run in finished if (c := _curve(run, split, metric))]
  if not curves:
    return
  if len(every) > 1:
    for c in every:
      ax.plot(*zip(*sorted(c.items())), color=color, alpha=0.25, lw=0.6)
  steps = sorted(set.intersection(*(set(c) for c in curves)))
  values = np.array([[c[s] for s in steps] for c in curves])
  mean = values.mean(axis=0)
  n = f" (n={len(curves)})" if len(curves) > 1 else ""
  ax.plot(steps, mean, color=color, marker=marker, ms=4, label=label + n)
  if len(curves) > 1:
    std = values.std(axis=0, ddof=1)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2,
                    lw=0)


def plot_learning_curves(runs: Sequence[Run],
                         fields: Sequence[str]) -> Figure:
  """Training loss and accuracy per logged step, and each eval's accuracy.

  Runs that differ only in ``seed`` are one line (mean, ± std band, the
  single runs thin); the legend sits below the axes, never on the data.
  Train curves are per logged step, so a one-epoch run is a curve too.
  """
  others = [f for f in fields if f != "seed"]
  groups: dict[str, list[Run]] = {}
  for run in runs:
    if not run.is_reproduction:
      groups.setdefault(short_label(run.config, others), []).append(run)
  evals = list(dict.fromkeys(n for r in runs for n in r.eval_names))[:3]
  panels = [("train", "loss", "Training loss"),
            ("train", "accuracy", "Training accuracy")]
  panels += [(ev, "accuracy", f"{ev} accuracy") for ev in evals]
  fig = Figure(figsize=(4.2 * len(panels), 4.2), layout="constrained")
  axes = fig.subplots(1, len(panels), squeeze=False)[0]
  for ax, (split, metric, title) in zip(axes, panels):
    for i, (label, members) in enumerate(groups.items()):
      _plot_group(ax, members, split, metric, f"C{i % 10}", label,
                  None if split == "train" else "o")
    ax.set(xlabel="step", ylabel=metric, title=title)
    ax.grid(alpha=0.3)
  handles, labels = axes[-1].get_legend_handles_labels()
  if not handles:
    handles, labels = axes[0].get_legend_handles_labels()
  if handles:
    fig.legend(handles, labels, loc="outside lower center",
               ncols=min(len(labels), 4), fontsize="small")
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


def plot_per_class(selected: Sequence[tuple[Run, dict[str, Any]]],
                   fields: Sequence[str]) -> Figure:
  """Per-class accuracy, one bar per run in each class; legend at the side."""
  names = list(dict.fromkeys(
      c for run, event in selected for c in _class_names(run, event)))
  x = np.arange(len(names))
  width = 0.8 / len(selected)
  splits = {event["split"] for _, event in selected}
  fig = Figure(figsize=(max(8, 0.25 * len(names) * len(selected) + 3) + 3,
                        4.5), layout="constrained")
  ax = fig.subplots()
  for i, (run, event) in enumerate(selected):
    acc = event.get("per_class_accuracy", {})
    where = (f"step {event['step']}" if len(splits) == 1 else
             f"{event['split']}, step {event['step']}")
    ax.bar(x - 0.4 + (i + 0.5) * width,
           [acc.get(c, math.nan) for c in names], width,
           label=f"{short_label(run.config, fields)} ({where})")
  ax.set_xticks(x, labels=names)
  title = "Per-class accuracy"
  if len(splits) == 1:
    title += f" on {splits.pop()}"
  ax.set(ylabel="accuracy", ylim=(0, 1), title=title)
  ax.grid(axis="y", alpha=0.3)
  fig.legend(loc="outside right upper", fontsize="small")
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
                  columns: Sequence[str], out: pathlib.Path) -> str:
  """Writes report_seeds.csv; returns the Markdown table (if any groups)."""
  others = [f for f in fields if f != "seed"]
  rows, csv_rows = [], []
  for g in groups:
    seeds = ", ".join(field_value(r.config, "seed") for r in g.runs
                      if r.status == "finished")
    cells = [(f"{g.mean[c]:.4f} ± {_cell(g.std[c])}" if c in g.mean else "-")
             for c in columns]
    rows.append([*g.key.values(), g.n, seeds, *cells])
    csv_rows.append([*g.key.values(), g.n, seeds, *(
        x for c in columns for x in (g.mean.get(c, ""), g.std.get(c, "")))])
  atomic.write_text(out / "report_seeds.csv", _csv(
      [*others, "n", "seeds",
       *(f"{c}_{s}" for c in columns for s in ("mean", "std"))], csv_rows))
  if not groups:
    return ""
  return ("\n## Over seeds\n\nRuns that differ only in `seed`: mean ± sample "
          "standard deviation (ddof=1) over the finished runs of each group "
          "(reproductions left out).\n\n"
          + _markdown_table([*others, "n", "seeds", *columns], rows) + "\n")


def write_report(dirs: Sequence[str | os.PathLike],
                 out: str | os.PathLike | None = None, *,
                 eval_name: str | None = None,
                 step: int | None = None,
                 columns: Sequence[str] | None = None) -> str:
  """Writes report.md, report.csv, seed groups and plots; returns the tables.

  ``eval_name`` and ``step`` choose the evaluation shown as confusion
  matrices and per-class accuracy (default: each run's checkpoint-selecting
  eval at its final step). ``columns`` are the metric columns of the
  tables and CSVs (``select_columns``; default all).
  """
  runs, unreadable = load_all(dirs)
  out = pathlib.Path(out if out is not None else dirs[0])
  fields = varying_fields([r.config for r in runs])
  columns = select_columns(metric_columns(runs), columns)
  header = ["run", *fields, "status", "step", *columns]
  rows = []
  for run in runs:
    summary = summarize(run)
    rows.append([run.name, *(field_value(run.config, f) for f in fields),
                 run.status, run.final_step,
                 *(summary.get(c, math.nan) for c in columns)])
  atomic.write_text(out / "report.csv", _csv(
      header, [[("" if isinstance(v, float) and math.isnan(v) else v)
                for v in row] for row in rows]))
  tables = "## Runs\n\n" + _markdown_table(header, rows) + "\n"

  tables += _seed_section(seed_groups(runs, fields, columns), fields,
                          columns, out)

  plots = out / "plots"
  _save_png(plot_learning_curves(runs, fields), plots / "learning_curves.png")
  images = ["![Learning curves](plots/learning_curves.png)"]
  selected = [(run, event) for run in runs
              if (event := _selected_event(run, eval_name, step))]
  if selected:
    _save_png(plot_per_class(selected, fields),
              plots / "per_class_accuracy.png")
    images.append("![Per-class accuracy](plots/per_class_accuracy.png)")
  for run, event in selected:
    file = f"confusion_{sweep_lib.safe_name(run.name)}.png"
    plot_confusion(run, event, plots / file)
    images.append(f"![Confusion matrix of {run.name}](plots/{file})")
  missing = [r.name for r in runs if all(r is not s for s, _ in selected)]

  notes = [f"- {u.name}: not reported, unreadable: {u.reason}"
           for u in unreadable]
  notes += [f"- {line}" for line in _failed_trials(dirs)]
  notes += [f"- {name}: no {eval_name or 'eval'} confusion matrix"
            f"{f' at step {step}' if step is not None else ''}"
            for name in missing]
  markdown = (
      f"# ferjax report\n\n{len(runs)} runs under "
      f"{', '.join(f'`{d}`' for d in dirs)}, {now()}"
      f"{f' ({len(unreadable)} unreadable: see Notes)' if unreadable else ''}"
      ". Columns: the config "
      "fields that differ between runs; final (last logged) and best value "
      "of each evaluation's metrics.\n\n" + tables +
      ("\n## Notes\n\n" + "\n".join(notes) + "\n" if notes else "") +
      "\n## Plots\n\n" + "\n\n".join(images) + "\n")
  atomic.write_text(out / "report.md", markdown)
  if unreadable:
    tables += "\n## Not reported (unreadable)\n\n" + "".join(
        f"- {u.path}: {u.reason}\n" for u in unreadable)
  return tables
