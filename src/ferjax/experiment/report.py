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
import io
import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from ferjax import atomic
from ferjax.evaluate import calibration_plots
from ferjax.experiment import sweep as sweep_lib
from ferjax.experiment.report_plots import (
    event_class_names, plot_comparison, plot_confusion, plot_learning_curves,
    plot_per_class, save_png, selected_event)
from ferjax.experiment.runs import (
    Run, SeedGroup, config_fields, field_cell, field_value, load_all,
    metric_columns, seed_groups, select_columns, summarize, table_fields,
    varying_fields)
from ferjax.metrics import class_distribution
from ferjax.run.manifest import now
from ferjax.run.run_dir import RunDir, RunDirError, read_json


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
        if trial.get("status") in ("pending", "running"):
          out.append(f"{path.parent / trial['name']}: {trial['status']} "
                     "(its sweep has not finished it yet)")
        elif trial.get("status") != "finished":
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
                         images: list[str], notes: list[str]) -> str:
  """Predicted against true class shares of the confusion matrices shown,
  and each calibrated run's temperatures (one per calibrated step), NLL and
  ECE (their reliability diagrams appended to ``images``); a calibration
  file that cannot be read is a line of ``notes``, not the report's end."""
  text = ""
  if selected:
    names = event_class_names(*selected[0])
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
    try:
      records = RunDir(run.path).read_calibrations()
    except RunDirError as e:
      notes.append(f"- {run.name}: calibration not reported: {e}")
      continue
    for step, record in records.items():
      rows.append([run.name, f"{record['temperature']:.4f}",
                   record["split"], step, f"{record['nll']:.4f} -> "
                   f"{record['nll_calibrated']:.4f}",
                   f"{record['ece']:.4f} -> {record['ece_calibrated']:.4f}"])
      suffix = f"_step{step}" if len(records) > 1 else ""
      file = f"reliability_{sweep_lib.safe_name(run.name)}{suffix}.png"
      calibration_plots.write_reliability_diagram(
          record, plots / file,
          f"{run.name}: reliability on {record['split']} (step {step})")
      images.append(f"![Reliability diagram of {run.name}, step {step}]"
                    f"(plots/{file})")
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
                 run.table_status, run.final_step, *metrics])
    csv_rows.append([run.name, *(field_value(run.config, f)
                                 for f in csv_fields),
                     run.table_status, run.final_step,
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
  save_png(plot_learning_curves(runs, fields), plots / "learning_curves.png")
  images = ["![Learning curves](plots/learning_curves.png)"]
  selected = [(run, event) for run in runs
              if (event := selected_event(run, eval_name, step))]
  if selected:
    save_png(plot_per_class(selected, fields),
              plots / "per_class_accuracy.png")
    images.append("![Per-class accuracy](plots/per_class_accuracy.png)")
  if any(r.eval_names for r in runs):
    save_png(plot_comparison(runs, fields), plots / "comparison.png")
    images.insert(1, "![Final metrics per run or seed group]"
                  "(plots/comparison.png)")
  for run, event in selected:
    file = f"confusion_{sweep_lib.safe_name(run.name)}.png"
    plot_confusion(run, event, plots / file)
    images.append(f"![Confusion matrix of {run.name}](plots/{file})")
  missing = [r.name for r in runs if all(r is not s for s, _ in selected)]
  notes = [f"- {u.name}: not reported, unreadable: {u.reason}"
           for u in unreadable]
  torn = [f"- {r.name}: {r.events_note}" for r in runs if r.events_note]
  notes += torn
  # In report.md only: the printed tables stay the run tables.
  sections = _calibration_section(selected, runs, plots, images, notes)
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
  if torn:
    tables += "\n## Torn metrics\n\n" + "\n".join(torn) + "\n"
  if unreadable:
    tables += "\n## Not reported (unreadable)\n\n" + "".join(
        f"- {u.path}: {u.reason}\n" for u in unreadable)
  return tables
