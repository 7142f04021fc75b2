"""Evaluates a run's checkpoint, or an ensemble of runs, on any split.

Builds only what evaluation needs: the eval splits (never the training
split), the model and the evaluators; the checkpoint is read as model
variables, without an optimizer. An ensemble averages its members' class
probabilities, each member with its own preprocessing and test-time
augmentation, as the review's "combining models" does.
"""

import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from ferjax import calibration
from ferjax.evaluations import EVALUATIONS
from ferjax.labels import check_same_labels
from ferjax.models import GEOMETRIC_MODELS
from ferjax.run.run_dir import RunDir, temperature_of
from ferjax.train import geometry
from ferjax.train import metrics as metrics_lib
from ferjax.train import setup
from ferjax.train.split_evaluator import Evaluator
from ferjax.train.parallel import Parallel

TTA = tuple(EVALUATIONS)


def _eval_configs(config: ml_collections.ConfigDict, split: str | None,
                  tta: str | None,
                  crop_size: tuple[int, int] | None
                  ) -> ml_collections.ConfigDict:
  """The run's evals, or one on ``split``; ``tta`` overrides each one's.

  On ``split``, the run's own eval of that split with that test-time
  augmentation is preferred, so that ten-crop keeps the run's crop size;
  a ten-crop eval without one takes that of the run's ten-crop eval of any
  split, else none (``_default_crops`` fills it in from the stored images).
  Evals are named as the run names them, or by the split, with the
  test-time augmentation added where the name does not say it.
  """
  evals = ml_collections.ConfigDict(config.evals.to_dict())
  if split is not None:
    matching = [ev for ev in evals.values() if ev.split == split]
    own = [ev for ev in matching if ev.get("tta", "none") == tta]
    evals = ml_collections.ConfigDict({split: (
        (own or matching)[0].to_dict() if matching
        else {"split": split, "tta": "none"})})
  if tta is not None:
    if tta not in TTA:
      raise ValueError(f"--tta: expected one of {', '.join(TTA)}, got {tta!r}")
    runs_crops = [tuple(ev.crop_size) for ev in config.evals.values()
                  if ev.get("tta", "none") == "ten_crop"
                  and ev.get("crop_size")]
    for ev in evals.values():
      ev.tta = tta
      if tta == "ten_crop" and (crop_size or not ev.get("crop_size")):
        chosen = crop_size or next(iter(runs_crops), None)
        if chosen:
          ev.crop_size = tuple(chosen)
  return ml_collections.ConfigDict({_row_name(name, ev.get("tta", "none")): ev
                                    for name, ev in evals.items()})


def _row_name(name: str, tta: str) -> str:
  """``public_test (ten_crop)``: a ten-crop result never shares the name of
  the single-crop one; a name that says so already stays."""
  if tta == "none" or tta.replace("_", "") in name.replace("_", ""):
    return name
  return f"{name} ({tta})"


def _default_crops(evals: ml_collections.ConfigDict,
                   image_shape: tuple[int, ...]) -> None:
  """Gives each ten-crop eval without a crop size 90% of the stored image.

  The crops are cut from the stored images (48x48 for FER2013) before the
  model's resize, so a size taken from the model's input (32x32 for LeNet-5)
  would classify a small part of each face.
  """
  height, width = image_shape[:2]
  for ev in evals.values():
    if ev.get("tta", "none") == "ten_crop" and not ev.get("crop_size"):
      ev.crop_size = (round(0.9 * height), round(0.9 * width))


@dataclasses.dataclass(frozen=True)
class _Member:
  """One run ready to evaluate: its checkpoint and its evaluators."""

  workdir: str
  step: int
  selected_by: str | None  # The metric that ranks 'best'.
  variables: dict[str, Any]  # By weights ('raw', 'ema'), replicated.
  evaluators: dict[str, Evaluator]
  stored_calibration: dict[str, Any] | None  # calibration.json, any step.

  @property
  def temperature(self) -> float | None:
    """The stored temperature if it is this checkpoint's."""
    return temperature_of(self.stored_calibration, self.step)

  def evaluate(self, name: str) -> dict[str, Any]:
    """The metrics of evaluation ``name`` on the variables it asks for; an
    error naming the checkpoint if its outputs are not finite (the metrics
    of NaN scores would mean nothing)."""
    ev = self.evaluators[name]
    result = ev(self.variables[ev.weights])
    if not math.isfinite(result["loss"]):
      raise ValueError(
          f"checkpoint {RunDir(self.workdir).checkpoints_path / str(self.step)}"
          f" gives non-finite outputs (NaN or infinity) on {name!r}: loss "
          f"{result['loss']}; its accuracy would be meaningless")
    return result

  def probabilities(self, name: str) -> np.ndarray:
    """(examples, classes) probabilities of evaluation ``name``."""
    ev = self.evaluators[name]
    return ev.probabilities(self.variables[ev.weights])

  def calibration(self, name: str,
                  probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """NLL and ECE of evaluation ``name`` (of its ``probabilities`` when
    already computed), also at the stored temperature."""
    if probabilities is None:
      probabilities = self.probabilities(name)
    logits = calibration.log_probabilities(probabilities)
    return calibration.measures(logits, self.evaluators[name].labels,
                                self.temperature)


def _member(workdir: str, *, split: str | None, checkpoint: str,
            tta: str | None, crop_size: tuple[int, int] | None,
            data_dir: str | None = None,
            manual_dir: str | None = None) -> _Member:
  run = RunDir(workdir)
  config = run.read_config()
  # Where the data lies on this machine, if not where the run was trained.
  config.input.data_dir = data_dir or config.input.data_dir
  config.input.manual_dir = manual_dir or config.input.manual_dir
  config.evals = _eval_configs(config, split, tta, crop_size)
  weights = {ev.get("weights", "raw") for ev in config.evals.values()}
  with run.checkpoints(config) as ckpt:
    step = run.resolve_step(ckpt, checkpoint)
    restored = {w: ckpt.restore_variables(step, w) for w in sorted(weights)}
  parallel = Parallel.from_config(config.parallel)
  data = setup.load_data(config, with_train=False)
  _default_crops(config.evals, data.info.image_shape)
  _, model = setup.models(config, len(data.info.class_names))
  evaluators = setup.evaluators(config, data.eval_splits, parallel=parallel,
                                model=model,
                                class_names=data.info.class_names)
  return _Member(str(workdir), step, config.checkpoint.best_metric,
                 parallel.replicate(restored), evaluators,
                 run.read_calibration())


def evaluate_run(workdir: str, *, split: str | None = None,
                 checkpoint: str = "best", tta: str | None = None,
                 crop_size: tuple[int, int] | None = None,
                 data_dir: str | None = None,
                 manual_dir: str | None = None) -> dict[str, Any]:
  """Metrics of a run's checkpoint on ``split`` (default: its evals).

  ``tta`` ('none' or 'ten_crop', with ``crop_size`` in pixels of the stored
  image) replaces each evaluation's test-time augmentation. Geometric runs
  (landmarks, no images, no test-time augmentation) go to ``geometry``.
  """
  if RunDir(workdir).read_config().model.name in GEOMETRIC_MODELS:
    return geometry.evaluate_run(workdir, split=split, checkpoint=checkpoint,
                                 data_dir=data_dir, manual_dir=manual_dir)
  member = _member(workdir, split=split, checkpoint=checkpoint, tta=tta,
                   crop_size=crop_size, data_dir=data_dir,
                   manual_dir=manual_dir)
  results = {name: {**member.evaluate(name),
                    "calibration": member.calibration(name)}
             for name in member.evaluators}
  return {"workdir": str(workdir), "step": member.step,
          "checkpoint": checkpoint, "selected_by": member.selected_by,
          "calibration": member.stored_calibration, "results": results}


def split_logits(workdir: str, *, split: str, checkpoint: str = "best",
                 data_dir: str | None = None,
                 manual_dir: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray, int]:
  """Single-crop logits (log-probabilities) and labels of ``split``, and the
  checkpoint's step: what a temperature is fitted to."""
  member = _member(workdir, split=split, checkpoint=checkpoint, tta="none",
                   crop_size=None, data_dir=data_dir, manual_dir=manual_dir)
  ((name, ev),) = member.evaluators.items()
  return (calibration.log_probabilities(member.probabilities(name)),
          np.asarray(ev.labels), member.step)


def evaluate_ensemble(workdirs: Sequence[str], *, split: str,
                      checkpoint: str | Sequence[str] = "best",
                      tta: str | None = None,
                      crop_size: tuple[int, int] | None = None,
                      data_dir: str | None = None,
                      manual_dir: str | None = None) -> dict[str, Any]:
  """Each member's metrics on ``split`` and those of their mean softmax
  (a member's calibrated softmax where it has a temperature, as in predict).

  ``checkpoint`` is one choice for every member or one per member (members
  trained for different budgets). Members must classify the same labels on
  the same examples: the same class names, and the same split of the same
  dataset (checked label by label).
  """
  if len(workdirs) < 2:
    raise ValueError("an ensemble needs at least two --workdir")
  checkpoints = [checkpoint] if isinstance(checkpoint, str) else list(
      checkpoint)
  if len(checkpoints) == 1:
    checkpoints *= len(workdirs)
  if len(checkpoints) != len(workdirs):
    raise ValueError(
        f"--checkpoint: expected one for every member or one per --workdir "
        f"({len(workdirs)}), got {len(checkpoints)}")
  # From the manifests, before any checkpoint or dataset is read.
  check_same_labels([str(w) for w in workdirs], [
      RunDir(w).dataset()["class_names"] for w in workdirs])
  members, probabilities = [], []
  first: Evaluator | None = None
  for workdir, member_checkpoint in zip(workdirs, checkpoints):
    member = _member(workdir, split=split, checkpoint=member_checkpoint,
                     tta=tta, crop_size=crop_size, data_dir=data_dir,
                     manual_dir=manual_dir)
    ((name, ev),) = member.evaluators.items()
    if first is None:
      first = ev
    else:
      check_same_labels([str(workdirs[0]), str(workdir)],
                        [first.class_names, ev.class_names])
    if not np.array_equal(ev.labels, first.labels):
      raise ValueError(
          f"ensemble members see different examples in split {split!r}: "
          f"{workdirs[0]} ({len(first.labels)} examples) and {workdir} "
          f"({len(ev.labels)}) do not read the same dataset split")
    probs = member.probabilities(name)
    members.append({"workdir": str(workdir), "step": member.step,
                    "checkpoint": member_checkpoint,
                    "selected_by": member.selected_by,
                    "results": {split: {
                        **member.evaluate(name),
                        "calibration": member.calibration(name, probs)}}})
    if member.temperature is not None:  # As predict's ensembles average.
      probs = calibration.scaled_probabilities(
          calibration.log_probabilities(probs), member.temperature)
    probabilities.append(probs)
  ensemble = metrics_lib.from_probabilities(
      np.mean(probabilities, axis=0), first.labels, first.class_names)
  return {"members": members,
          "checkpoint": checkpoints[0] if len(set(checkpoints)) == 1 else None,
          "ensemble": {"results": {split: ensemble}}}


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
    title = (f"ensemble of {len(result['members'])} runs under {base} on "
             f"{split}, "
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
  text += _distribution_table(per_class_columns)
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


def _distribution_table(columns: Sequence[tuple[str, dict[str, Any]]]
                        ) -> list[str]:
  """How often each class occurs and is predicted, per eval (or member):
  an 'always neutral' model is one line."""
  classes = list(columns[0][1]["per_class_accuracy"])
  header, cells = ["class"], []
  for name, r in columns:
    true, predicted = metrics_lib.class_distribution(r["confusion_matrix"])
    header += [f"{name} true", "predicted"]
    cells.append((true, predicted))
  rows = [(c, *(f"{100 * x[i]:.1f}%" for pair in cells for x in pair))
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
  if stored is None:
    title = ("calibration (softmax as trained; 'ferjax calibrate' fits a "
             "temperature):")
  elif stored["step"] != result["step"]:
    title = (f"calibration (softmax as trained: the stored temperature is "
             f"step {stored['step']}'s, not this checkpoint's):")
  else:
    title = (f"calibration (temperature {stored['temperature']:.4f} fitted "
             f"on {stored.get('split')}; calibrated scores are softmax("
             "logits / T)):")
    header += ["nll (T)", f"ece{calibration.ECE_BINS} (T)"]
  return [title, _rows_table(header, rows)]
