"""Late fusion of a CNN and a geometric SVM: one weight, fitted on validation.

The fused class scores are log p_cnn + w * s_svm: the CNN's log-softmax and
the SVM's margins, w >= 0 chosen on the validation split by the
negative log-likelihood of softmax(fused) (a grid of ``GRID`` values, the
first best: deterministic), then applied unchanged to the test split.
w = 0 is the CNN alone, so on validation the fusion is never worse than
the CNN by that measure. Each run is read as ``ferjax eval`` reads it.
"""

from typing import Any

import numpy as np

from ferjax import metrics as metrics_lib
from ferjax.evaluate import run_evaluation
from ferjax.train import geometry

GRID = np.concatenate([[0.0], np.geomspace(0.01, 20.0, 200)])


def _softmax(z: np.ndarray) -> np.ndarray:
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def nll(log_p: np.ndarray, svm: np.ndarray, labels: np.ndarray,
        weight: float) -> float:
  p = _softmax(log_p + weight * svm)
  return float(-np.log(np.maximum(p[np.arange(len(labels)), labels],
                                  1e-300)).mean())


def fit_weight(log_p: np.ndarray, svm: np.ndarray,
               labels: np.ndarray) -> float:
  """The SVM's weight w in ``GRID`` minimising the validation NLL."""
  losses = [nll(log_p, svm, labels, w) for w in GRID]
  return float(GRID[int(np.argmin(losses))])


def fuse_runs(cnn: str, geometric: str, *, validation: str, test: str,
              class_names: tuple[str, ...], checkpoint: str = "best",
              data_dir: str | None = None,
              manual_dir: str | None = None) -> dict[str, Any]:
  """The metrics on ``test`` of the CNN run, the geometric run and their
  late fusion with w fitted on ``validation``."""
  options = dict(checkpoint=checkpoint, data_dir=data_dir,
                 manual_dir=manual_dir)
  parts = {}
  for split in (validation, test):
    log_p, labels, _ = run_evaluation.split_logits(cnn, split=split,
                                                   **options)
    svm, svm_labels = geometry.split_scores(geometric, split=split, **options)
    if not np.array_equal(labels, svm_labels):
      raise ValueError(f"{split}: the two runs' examples differ (another "
                       "dataset or version); fusion needs the same faces")
    parts[split] = (log_p, svm, labels)
  weight = fit_weight(*parts[validation])
  log_p, svm, labels = parts[test]

  def measured(p):
    return metrics_lib.from_probabilities(p, labels, class_names)

  return {"weight": weight, "validation": validation, "test": test,
          "cnn": measured(np.exp(log_p)),
          "geometry": measured(_softmax(svm)),
          "late_fusion": measured(_softmax(log_p + weight * svm))}
