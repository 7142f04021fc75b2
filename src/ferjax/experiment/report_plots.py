"""The plots of ``ferjax report``: learning curves, confusion matrices,
per-class accuracy and the family comparison.

Each line is named by its run (or, for runs that differ only in seed, by
what their names share); legends go below the axes, never over them.
"""

import io
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ferjax import atomic
from ferjax.experiment.runs import Group, Run, run_groups, summarize
from ferjax.metrics import HEADLINE as METRICS


def save_png(fig: Figure, path: pathlib.Path) -> None:
  """Saves atomically: a reader never sees half a PNG."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  atomic.write_bytes(path, buffer.getvalue())


def selected_event(run: Run, eval_name: str | None,
                   step: int | None) -> dict[str, Any] | None:
  """The eval event a confusion matrix shows: final one unless chosen."""
  name = eval_name or run.primary_eval
  events = [e for e in run.eval_events(name or "")
            if "confusion_matrix" in e and (step is None or e["step"] == step)]
  return max(events, key=lambda e: e["step"]) if events else None


def event_class_names(run: Run, event: dict[str, Any]) -> list[str]:
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
  names = event_class_names(run, event)
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
  save_png(fig, path)


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
      c for run, event in selected for c in event_class_names(run, event)))
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
