"""Seeded evaluation splits over label and subject arrays (pure numpy).

Datasets without an official split (CK+) are evaluated with either the
review's stratified 70/30 hold-out or subject-independent k-fold cross
validation; both return sorted index arrays into the caller's examples.
"""

import numpy as np


def _as_1d(values: np.ndarray, name: str) -> np.ndarray:
  values = np.asarray(values)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f"{name} must be a non-empty 1-D array, got shape "
                     f"{values.shape}")
  return values


def stratified_split(labels: np.ndarray, test_fraction: float = 0.3,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Splits indices so every class keeps its share of the test set.

  Each class c with n_c examples sends floor or ceil of n_c * test_fraction
  to the test side (so it is within one example of its exact share), and the
  total is round(n * test_fraction): the leftover examples go to the classes
  with the largest fractional parts. Which examples go is a seeded shuffle.
  """
  labels = _as_1d(labels, "labels")
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
  classes, inverse, counts = np.unique(labels, return_inverse=True,
                                       return_counts=True)
  exact = counts * test_fraction
  n_test = np.floor(exact).astype(np.int64)
  leftover = int(round(labels.size * test_fraction)) - int(n_test.sum())
  # Stable sort: equal remainders go to the class that sorts first.
  by_remainder = np.argsort(-(exact - n_test), kind="stable")
  n_test[by_remainder[:leftover]] += 1
  rng = np.random.default_rng(seed)
  test = [rng.permutation(np.flatnonzero(inverse == c))[:n_test[c]]
          for c in range(classes.size)]
  test_idx = np.sort(np.concatenate(test))
  train_idx = np.setdiff1d(np.arange(labels.size), test_idx)
  return train_idx, test_idx


def subject_kfold(subjects: np.ndarray, k: int, seed: int = 0,
                  labels: np.ndarray | None = None
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
  """k folds grouped by subject, so no person is on both sides of a fold.

  Subjects are dealt out largest first (ties in a seeded order), each to the
  fold that stays most balanced: without labels the smallest fold, which
  keeps fold sizes within one subject's size of each other; with labels the
  fold that keeps every class's share across folds most even (as in
  scikit-learn's StratifiedGroupKFold), ties going to the smallest fold.
  Returns [(train_idx, test_idx)] * k; each example is in exactly one test
  fold.
  """
  subjects = _as_1d(subjects, "subjects")
  groups, inverse = np.unique(subjects, return_inverse=True)
  if not 2 <= k <= groups.size:
    raise ValueError(f"k must be in [2, number of subjects = {groups.size}], "
                     f"got {k}")
  if labels is None:
    per_group = np.bincount(inverse)[:, None]
  else:
    labels = _as_1d(labels, "labels")
    if labels.shape != subjects.shape:
      raise ValueError(f"labels has shape {labels.shape}, subjects has "
                       f"{subjects.shape}")
    _, label_ids = np.unique(labels, return_inverse=True)
    per_group = np.zeros((groups.size, label_ids.max() + 1), np.int64)
    np.add.at(per_group, (inverse, label_ids), 1)
  sizes = per_group.sum(axis=1)
  order = np.random.default_rng(seed).permutation(groups.size)
  order = order[np.argsort(-sizes[order], kind="stable")]
  fold_counts = np.zeros((k, per_group.shape[1]), np.int64)
  fold_of_group = np.empty(groups.size, np.int64)
  class_totals = np.maximum(per_group.sum(axis=0), 1)
  for g in order:
    if labels is None:
      fold = int(np.argmin(fold_counts[:, 0]))
    else:
      spread = np.empty(k)
      for f in range(k):
        trial = fold_counts.copy()
        trial[f] += per_group[g]
        spread[f] = np.mean(np.std(trial / class_totals, axis=0))
      best = np.flatnonzero(np.isclose(spread, spread.min()))
      fold = int(best[np.argmin(fold_counts[best].sum(axis=1))])
    fold_counts[fold] += per_group[g]
    fold_of_group[g] = fold
  fold_of_example = fold_of_group[inverse]
  return [(np.flatnonzero(fold_of_example != f),
           np.flatnonzero(fold_of_example == f)) for f in range(k)]
