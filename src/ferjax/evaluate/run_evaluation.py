"""Evaluates a run's checkpoint, or an ensemble of runs, on any split.

Builds only what evaluation needs: the eval splits (never the training
split), the model and the evaluators; the checkpoint is read as model
variables, without an optimizer. An ensemble averages its members' class
probabilities, each member with its own preprocessing and test-time
augmentation, as the review's "combining models" does. The results are
records; ``ferjax eval`` prints them as tables (``commands.tables``).
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
import numpy as np

from ferjax import calibration
from ferjax import metrics as metrics_lib
from ferjax.evaluate.views import VIEWS
from ferjax.labels import check_same_labels
from ferjax.models import GEOMETRIC_MODELS
from ferjax.run.model import open_run
from ferjax.run.run_dir import RunDir
from ferjax.train import geometry
from ferjax.train import setup
from ferjax.train.split_evaluator import Evaluator
from ferjax.train.parallel import AXIS, Parallel

TTA = tuple(VIEWS)


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
  calibrations: dict[int, dict[str, Any]]  # calibration.json, by step.

  @property
  def stored_calibration(self) -> dict[str, Any] | None:
    """The temperature scaling fitted for this checkpoint, if any."""
    return self.calibrations.get(self.step)

  @property
  def temperature(self) -> float | None:
    """The stored temperature if one is this checkpoint's."""
    record = self.stored_calibration
    return record["temperature"] if record else None

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

  def log_probabilities(self, name: str) -> np.ndarray:
    """(examples, classes) log-probabilities of evaluation ``name``: those
    its loss is computed from."""
    ev = self.evaluators[name]
    return ev.log_probabilities(self.variables[ev.weights])

  def calibration(self, name: str,
                  log_probabilities: np.ndarray | None = None
                  ) -> dict[str, Any]:
    """NLL and ECE of evaluation ``name`` (of its ``log_probabilities``
    when already computed), also at the stored temperature."""
    if log_probabilities is None:
      log_probabilities = self.log_probabilities(name)
    return calibration.measures(log_probabilities,
                                self.evaluators[name].labels,
                                self.temperature)


def _member(workdir: str, *, split: str | None, checkpoint: str,
            tta: str | None, crop_size: tuple[int, int] | None,
            data_dir: str | None = None,
            manual_dir: str | None = None,
            load_data: Callable[..., setup.Data] = setup.load_data
            ) -> _Member:
  """``workdir``'s checkpoint with evaluators of ``split`` (default: its
  evals), on the data ``load_data`` reads for the config (the run's own;
  another dataset's for cross_dataset)."""
  opened = open_run(workdir, data_dir=data_dir, manual_dir=manual_dir)
  run, config = opened.run, opened.config
  config.evals = _eval_configs(config, split, tta, crop_size)
  step, restored = opened.restore(
      checkpoint, {ev.get("weights", "raw") for ev in config.evals.values()})
  parallel = Parallel.from_config(config.parallel)
  data = load_data(config, with_train=False)
  _default_crops(config.evals, data.info.image_shape)
  model = opened.model(len(data.info.class_names), bn_axis_name=AXIS)
  evaluators = setup.evaluators(config, data.eval_splits, parallel=parallel,
                                model=model,
                                class_names=data.info.class_names)
  return _Member(str(workdir), step, config.checkpoint.best_metric,
                 parallel.replicate(restored), evaluators,
                 run.read_calibrations())


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
          "calibration": member.stored_calibration,
          "calibrated_steps": sorted(member.calibrations), "results": results}


def split_logits(workdir: str, *, split: str, checkpoint: str = "best",
                 data_dir: str | None = None,
                 manual_dir: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray, int]:
  """Single-crop logits (log-probabilities) and labels of ``split``, and the
  checkpoint's step: what a temperature is fitted to."""
  member = _member(workdir, split=split, checkpoint=checkpoint, tta="none",
                   crop_size=None, data_dir=data_dir, manual_dir=manual_dir)
  ((name, ev),) = member.evaluators.items()
  return (member.log_probabilities(name), np.asarray(ev.labels), member.step)


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
    log_probs = member.log_probabilities(name)
    members.append({"workdir": str(workdir), "step": member.step,
                    "checkpoint": member_checkpoint,
                    "selected_by": member.selected_by,
                    "calibrated": member.temperature is not None,
                    "results": {split: {
                        **member.evaluate(name),
                        "calibration": member.calibration(name, log_probs)}}})
    # As predict's ensembles average: each member calibrated if it can be.
    probabilities.append(calibration.scaled_probabilities(
        log_probs, member.temperature or 1.0))
  ensemble = metrics_lib.from_probabilities(
      np.mean(probabilities, axis=0), first.labels, first.class_names)
  return {"members": members,
          "checkpoint": checkpoints[0] if len(set(checkpoints)) == 1 else None,
          "ensemble": {"calibrated": calibration.calibrated_flag(
              [m["calibrated"] for m in members]),
                       "results": {split: ensemble}}}
