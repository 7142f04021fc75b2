"""Fits a run's softmax temperature on its validation split and stores it.

``ferjax eval`` and ``ferjax predict`` then report softmax(logits / T) for
that checkpoint (``RunDir.read_calibration``).
"""

import os
from typing import Any

import ml_collections

from ferjax import calibration
from ferjax.run.run_dir import RunDir
from ferjax.evaluate import run_evaluation


def validation_split(config: ml_collections.ConfigDict, workdir: str) -> str:
  """The split of the eval that selects the run's best checkpoint (its
  validation split): the data a temperature may be fitted on."""
  name = config.checkpoint.best_metric.split("/")[0]
  if name not in config.evals:
    raise ValueError(
        f"{workdir}: no validation eval to calibrate on (checkpoint."
        f"best_metric is {config.checkpoint.best_metric!r}, not one of the "
        f"evals {', '.join(config.evals)}); give --split")
  return config.evals[name].split


def calibrate_run(workdir: str | os.PathLike, *, split: str | None = None,
                  checkpoint: str = "best", data_dir: str | None = None,
                  manual_dir: str | None = None) -> dict[str, Any]:
  """Fits T on ``split`` (default: the validation split) for a checkpoint
  and writes it into the run; returns the record (T, split, step, NLL and
  ECE before and after, the reliability bins before and after)."""
  workdir = str(workdir)
  run = RunDir(workdir)
  split = split or validation_split(run.read_config(), workdir)
  logits, labels, step = run_evaluation.split_logits(
      workdir, split=split, checkpoint=checkpoint, data_dir=data_dir,
      manual_dir=manual_dir)
  try:
    temperature = calibration.fit_temperature(logits, labels)
  except calibration.DegenerateFit as e:
    raise calibration.DegenerateFit(
        f"{workdir}: no temperature stored for step {step} from split "
        f"{split!r}: {e}") from None
  record = {
      "temperature": temperature, "split": split, "checkpoint": checkpoint,
      "step": step, "num_examples": len(labels),
      "ece_bins": calibration.ECE_BINS,
      **calibration.measures(logits, labels, temperature),
      "reliability": {
          "before": calibration.reliability_bins(
              calibration.scaled_probabilities(logits), labels),
          "after": calibration.reliability_bins(
              calibration.scaled_probabilities(logits, temperature),
              labels)}}
  run.write_calibration(record)
  return record
