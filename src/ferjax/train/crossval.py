"""k-fold cross-validation: every fold of an experiment, then mean and std.

CK+ has no official split; results are reported over subject-grouped folds
(``input.protocol = 'kfold'``). Each fold trains in ``WORKDIR/fold_<i>``, so
an interrupted cross-validation resumes fold by fold like any run. The
cross-validation directory is locked for its whole life (each fold's run
directory too, by the trainer), so a second crossval there is refused.
"""

import contextlib
from typing import Any

import jax
import ml_collections
import numpy as np

from ferjax import atomic
from ferjax import finite_json
from ferjax import metrics
from ferjax.run.run_dir import RunDir
from ferjax.train import loop


def aggregate(per_fold: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
  """Mean and sample std (ddof=1) over folds of each eval's metrics."""
  summary: dict[str, Any] = {}
  for name in per_fold[0]:
    for metric in metrics.HEADLINE:
      values = np.array([fold[name][metric] for fold in per_fold])
      summary[f"{name}/{metric}"] = {
          "mean": float(values.mean()),
          "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
          "folds": values.tolist()}
  return summary


def run_folds(config: ml_collections.ConfigDict, workdir: str,
              *, argv: list[str] | None = None) -> dict[str, Any]:
  """Trains every fold of ``config`` and writes the run's crossval summary."""
  if config.input.get("protocol") != "kfold":
    raise ValueError("config.input.protocol: cross-validation needs 'kfold', "
                     f"got {config.input.get('protocol')!r}")
  is_chief = jax.process_index() == 0
  run = RunDir(workdir)
  with (run.lock(argv) if is_chief
        else contextlib.nullcontext()):
    per_fold = []
    for fold in range(config.input.folds):
      fold_config = ml_collections.ConfigDict(config.to_dict())
      fold_config.input.fold = fold
      results = loop.train_and_evaluate(
          fold_config, str(run.fold(fold).path), argv=argv)
      per_fold.append(results)
    summary = {"folds": config.input.folds, "metrics": aggregate(per_fold)}
    if is_chief:
      atomic.write_text(run.crossval_path,
                        finite_json.dumps(summary, indent=2) + "\n")
  return summary
