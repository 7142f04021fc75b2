"""Evaluation metrics computed on the host from summed device results."""

from typing import Any

import numpy as np


def summarize(totals: dict[str, Any],
              class_names: tuple[str, ...]) -> dict[str, Any]:
  """Host-side metrics from eval sums: accuracy, per-class, macro F1."""
  confusion = np.asarray(totals["confusion"], np.float64)
  count = float(totals["count"])
  true_per_class = confusion.sum(axis=1)
  predicted_per_class = confusion.sum(axis=0)
  hits = np.diag(confusion)
  recall = np.divide(hits, true_per_class, out=np.zeros_like(hits),
                     where=true_per_class > 0)
  precision = np.divide(hits, predicted_per_class, out=np.zeros_like(hits),
                        where=predicted_per_class > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(hits),
                 where=denom > 0)
  present = true_per_class > 0
  return {
      "accuracy": float(hits.sum() / count) if count else 0.0,
      "loss": float(totals["loss_sum"]) / count if count else 0.0,
      "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
      "per_class_accuracy": {c: float(r) for c, r in zip(class_names, recall)},
      "confusion_matrix": confusion.astype(int).tolist(),
      "num_examples": int(round(count)),
  }
