"""Evaluation metrics, defined once: name, computation, headline or not.

Devices sum a split's confusion matrix, loss and count (``steps.eval_split``);
every metric is computed here on the host from those sums. Headline metrics
are the ones the CLI prints, cross-validation aggregates over folds and
reports tabulate; a new metric is a function and a line in ``METRICS``.
Training, evaluation and reports all read the names here, below them all.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Sums:
  """A split's evaluation sums, as float64 on the host."""

  confusion: np.ndarray  # [true, predicted] counts.
  loss_sum: float
  count: float
  class_names: tuple[str, ...]

  @property
  def recall(self) -> np.ndarray:
    hits, true = np.diag(self.confusion), self.confusion.sum(axis=1)
    return np.divide(hits, true, out=np.zeros_like(hits), where=true > 0)

  @property
  def precision(self) -> np.ndarray:
    hits, predicted = np.diag(self.confusion), self.confusion.sum(axis=0)
    return np.divide(hits, predicted, out=np.zeros_like(hits),
                     where=predicted > 0)


def _accuracy(s: Sums) -> float:
  return float(np.diag(s.confusion).sum() / s.count) if s.count else 0.0


def _loss(s: Sums) -> float:
  return s.loss_sum / s.count if s.count else 0.0


def _macro_f1(s: Sums) -> float:
  """F1 averaged over the classes present in the split."""
  p, r = s.precision, s.recall
  f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=p + r > 0)
  present = s.confusion.sum(axis=1) > 0
  return float(f1[present].mean()) if present.any() else 0.0


def _per_class_accuracy(s: Sums) -> dict[str, float]:
  return {c: float(r) for c, r in zip(s.class_names, s.recall)}


def _confusion_matrix(s: Sums) -> list[list[int]]:
  return s.confusion.astype(int).tolist()


def _num_examples(s: Sums) -> int:
  return int(round(s.count))


@dataclasses.dataclass(frozen=True)
class Metric:
  compute: Callable[[Sums], Any]
  headline: bool = False  # Printed, aggregated over folds, tabulated.


METRICS: dict[str, Metric] = {
    "accuracy": Metric(_accuracy, headline=True),
    "loss": Metric(_loss),
    "macro_f1": Metric(_macro_f1, headline=True),
    "per_class_accuracy": Metric(_per_class_accuracy),
    "confusion_matrix": Metric(_confusion_matrix),
    "num_examples": Metric(_num_examples),
}
HEADLINE: tuple[str, ...] = tuple(
    name for name, m in METRICS.items() if m.headline)


def class_distribution(confusion: Any) -> tuple[np.ndarray, np.ndarray]:
  """The fraction of examples of each true class and of each predicted one,
  from a [true, predicted] confusion matrix: a model that always says one
  class shows 100% there, whatever the split holds."""
  confusion = np.asarray(confusion, np.float64)
  total = max(confusion.sum(), 1.0)
  return confusion.sum(axis=1) / total, confusion.sum(axis=0) / total


def summarize(totals: dict[str, Any],
              class_names: tuple[str, ...]) -> dict[str, Any]:
  """Every metric of ``METRICS`` from a split's summed device results."""
  sums = Sums(np.asarray(totals["confusion"], np.float64),
              float(totals["loss_sum"]), float(totals["count"]),
              tuple(class_names))
  return {name: m.compute(sums) for name, m in METRICS.items()}


def from_probabilities(probabilities: np.ndarray, labels: np.ndarray,
                       class_names: tuple[str, ...]) -> dict[str, Any]:
  """Every metric of an ensemble's averaged class probabilities.

  Its loss is the cross-entropy of the averaged probabilities: the members'
  own losses may differ (focal, smoothing) and do not average meaningfully.
  """
  labels = np.asarray(labels, np.int64)
  k = len(class_names)
  confusion = np.zeros((k, k), np.float64)
  np.add.at(confusion, (labels, probabilities.argmax(-1)), 1)
  picked = probabilities[np.arange(len(labels)), labels]
  loss_sum = -np.log(np.maximum(picked, np.finfo(np.float32).tiny)).sum()
  return summarize({"confusion": confusion, "loss_sum": loss_sum,
                    "count": len(labels)}, class_names)
