"""The tables ``ferjax eval`` prints: a run's or an ensemble's results
(``evaluate.run_evaluation`` records), and runs on other datasets
(``evaluate.cross_dataset``), as aligned text."""

import os
from collections.abc import Sequence
from typing import Any

from ferjax import calibration
from ferjax import metrics as metrics_lib


def _rows_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
  """Left-aligned first column, right-aligned numbers."""
  cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
           for row in rows]
  widths = [max(len(str(h)), *(len(r[i]) for r in cells))
            for i, h in enumerate(header)]
  lines = ["  ".join(str(h).ljust(w) if i == 0 else str(h).rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))]
  lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(row, widths)))
            for row in cells]
  return "\n".join(lines)


def _short_names(workdirs: Sequence[str]) -> tuple[str, list[str]]:
  """The members' common parent and each one's path below it: a table's
  row names, not the full paths (200 characters a line)."""
  paths = [os.path.abspath(w) for w in workdirs]
  base = os.path.commonpath(paths)
  if base in paths:  # A member is the others' parent, or all are one.
    base = os.path.dirname(base)
  return base, [os.path.relpath(p, base) for p in paths]


def format_results(result: dict[str, Any], *, per_class: bool = False) -> str:
  """``evaluate_run`` or ``evaluate_ensemble`` output as readable tables."""
  columns = (*metrics_lib.HEADLINE, "loss", "num_examples")
  header = [*columns[:-1], "examples"]
  if "members" in result:
    base, names = _short_names([m["workdir"] for m in result["members"]])
    named = [(f"{name} (step {m['step']})", m["results"])
             for name, m in zip(names, result["members"])]
    named.append(("ensemble (mean softmax)", result["ensemble"]["results"]))
    (split,) = result["ensemble"]["results"]
    title = (f"ensemble of {len(result['members'])} runs "
             f"({', '.join(names)}) under {base} on {split}, "
             + (f"checkpoint {result['checkpoint']}" if result["checkpoint"]
                else "checkpoints per member"))
    rows = [(name, *(r[split][c] for c in columns)) for name, r in named]
    per_class_columns = [(name, r[split]) for name, r in named]
    text = [title, _rows_table(["model", *header], rows)]
  else:
    which = result["checkpoint"]
    why = (f", selected by {result['selected_by']}"
           if which == "best" and result.get("selected_by") else "")
    title = f"{result['workdir']}: checkpoint {which} (step {result['step']}{why})"
    rows = [(name, *(r[c] for c in columns))
            for name, r in result["results"].items()]
    per_class_columns = list(result["results"].items())
    text = [title, _rows_table(["eval", *header], rows)]
  text += _distribution_table(per_class_columns,
                              one_split="members" in result)
  low = {name: r["low_score_meshes"] for name, r in per_class_columns
         if "low_score_meshes" in r}
  if low:  # A geometric run: faces whose FaceMesh score was under 0.5.
    text.append("faces with a low FaceMesh score (classified, counted): "
                + ", ".join(f"{name} {n}" for name, n in low.items()))
  if "calibration" in result:
    text += _calibration_table(result)
  if per_class:
    classes = list(per_class_columns[0][1]["per_class_accuracy"])
    text.append("per-class accuracy:")
    text.append(_rows_table(
        ["class", *(name for name, _ in per_class_columns)],
        [(c, *(float(r["per_class_accuracy"][c]) for _, r in per_class_columns))
         for c in classes]))
  return "\n".join(text)


def _distribution_table(columns: Sequence[tuple[str, dict[str, Any]]], *,
                        one_split: bool = False) -> list[str]:
  """How often each class occurs and is predicted, per eval (or member):
  an 'always neutral' model is one line. ``one_split`` (an ensemble's
  members, on the same examples): one "true" column for all."""
  classes = list(columns[0][1]["per_class_accuracy"])
  shares = [metrics_lib.class_distribution(r["confusion_matrix"])
            for _, r in columns]
  if one_split:
    header = ["class", "true", *(f"{name} predicted" for name, _ in columns)]
    cells = [shares[0][0], *(predicted for _, predicted in shares)]
  else:
    header = ["class"]
    for name, _ in columns:
      header += [f"{name} true", "predicted"]
    cells = [x for pair in shares for x in pair]
  rows = [(c, *(f"{100 * x[i]:.1f}%" for x in cells))
          for i, c in enumerate(classes)]
  return ["class distribution (share of examples, true and predicted):",
          _rows_table(header, rows)]


def _calibration_table(result: dict[str, Any]) -> list[str]:
  """NLL and ECE of each eval's softmax, and after temperature scaling."""
  stored = result["calibration"]
  rows = [(name, r["calibration"]["nll"], r["calibration"]["ece"],
           *((r["calibration"]["nll_calibrated"],
              r["calibration"]["ece_calibrated"])
             if "temperature" in r["calibration"] else ()))
          for name, r in result["results"].items()]
  header = ["eval", "nll", f"ece{calibration.ECE_BINS}"]
  others = result.get("calibrated_steps", [])
  if stored is None and not others:
    title = ("calibration (softmax as trained; 'ferjax calibrate' fits a "
             "temperature):")
  elif stored is None:
    title = (f"calibration (softmax as trained: the stored temperatures are "
             f"those of steps {', '.join(map(str, others))}, not this "
             "checkpoint's):")
  else:
    title = (f"calibration (temperature {stored['temperature']:.4f} fitted "
             f"on {stored.get('split')}; calibrated scores are softmax("
             "logits / T)):")
    header += ["nll (T)", f"ece{calibration.ECE_BINS} (T)"]
  return [title, _rows_table(header, rows)]


def format_cross_dataset(result: dict[str, Any]) -> str:
  """Models against datasets (accuracy on the shared classes), then what
  could not be scored, by dataset."""
  base, names = _short_names(
      [m for m in result["models"] if m != "ensemble"])
  names += ["ensemble (mean softmax)"] if "ensemble" in result["models"] \
      else []
  columns = [f"{e['dataset']}:{e['split']}" for e in result["evaluations"]]
  rows = [(name, *(e["results"][model]["accuracy"]
                   for e in result["evaluations"]))
          for name, model in zip(names, result["models"])]
  lines = [f"accuracy on the classes each dataset shares with the models "
           f"(runs under {base}):",
           _rows_table(["model", *columns], rows)]
  first_model = names[0]
  for column, e in zip(columns, result["evaluations"]):
    first = e["results"][result["models"][0]]
    notes = [f"{first['num_examples']} of {first['examples_all']} examples "
             "scored"]
    for name, record in first["dataset_only"].items():
      top = ", ".join(f"{c} {n}" for c, n in
                      list(record["predicted_as"].items())[:3])
      notes.append(f"{name} only in the dataset: {record['examples']} "
                   f"examples not scored ({first_model} called them {top})")
    for name, n in first["model_only_predicted"].items():
      notes.append(f"{name} only in the model: {first_model} predicted it "
                   f"{n} times")
    lines.append(f"  {column}: " + "; ".join(notes))
  return "\n".join(lines)
