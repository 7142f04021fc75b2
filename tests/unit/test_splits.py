"""Tests of the seeded splits in ferjax.data.splits."""

import numpy as np
import pytest

from ferjax.data import splits


def _labels(counts, seed=0):
  labels = np.repeat(np.arange(len(counts)), counts)
  return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize("counts,fraction", [
    ((135, 18, 75, 207, 84, 249, 54), 0.3),  # CK+48's class sizes.
    ((1, 2, 3, 5, 8, 13), 0.3),
    ((10, 10, 10), 0.25),
    ((7, 1000), 0.5),
])
def test_stratified_split_keeps_class_shares(counts, fraction):
  labels = _labels(counts)
  train, test = splits.stratified_split(labels, fraction, seed=1)
  assert np.intersect1d(train, test).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])),
                                np.arange(labels.size))
  assert test.size == round(labels.size * fraction)
  for c, n in enumerate(counts):
    assert abs(np.sum(labels[test] == c) - n * fraction) < 1


def test_stratified_split_is_seeded():
  labels = _labels((30, 40, 50))
  first = splits.stratified_split(labels, seed=3)
  again = splits.stratified_split(labels, seed=3)
  other = splits.stratified_split(labels, seed=4)
  np.testing.assert_array_equal(first[1], again[1])
  np.testing.assert_array_equal(first[0], again[0])
  assert not np.array_equal(first[1], other[1])


def test_stratified_split_rejects_bad_fraction():
  with pytest.raises(ValueError, match="test_fraction"):
    splits.stratified_split(np.zeros(10), 1.0)


def _subjects(rng, n_subjects=23):
  sizes = rng.integers(1, 15, n_subjects)
  return rng.permutation(np.repeat(np.arange(100, 100 + n_subjects), sizes))


@pytest.mark.parametrize("k", [2, 5, 10])
@pytest.mark.parametrize("stratify", [False, True])
def test_subject_kfold_is_subject_independent_and_covering(k, stratify):
  rng = np.random.default_rng(k)
  subjects = _subjects(rng)
  labels = rng.integers(0, 7, subjects.size) if stratify else None
  folds = splits.subject_kfold(subjects, k, seed=0, labels=labels)
  assert len(folds) == k
  seen = np.concatenate([test for _, test in folds])
  np.testing.assert_array_equal(np.sort(seen), np.arange(subjects.size))
  for train, test in folds:
    assert test.size > 0
    assert np.intersect1d(subjects[train], subjects[test]).size == 0
    np.testing.assert_array_equal(
        np.sort(np.concatenate([train, test])), np.arange(subjects.size))


def test_subject_kfold_balances_fold_sizes():
  rng = np.random.default_rng(7)
  subjects = _subjects(rng, 40)
  largest = np.bincount(np.unique(subjects, return_inverse=True)[1]).max()
  sizes = [test.size for _, test in splits.subject_kfold(subjects, 5, 0)]
  assert max(sizes) - min(sizes) <= largest


def test_subject_kfold_with_labels_spreads_each_class():
  rng = np.random.default_rng(8)
  subjects = np.repeat(np.arange(60), 6)
  # Each subject shows one class only, like a CK+ sequence per emotion.
  labels = np.repeat(rng.integers(0, 3, 60), 6)
  folds = splits.subject_kfold(subjects, 4, seed=0, labels=labels)
  for c in range(3):
    per_fold = [np.sum(labels[test] == c) for _, test in folds]
    assert max(per_fold) - min(per_fold) <= 6


def test_subject_kfold_is_seeded():
  subjects = np.repeat(np.arange(12), 3)
  first = splits.subject_kfold(subjects, 3, seed=1)
  again = splits.subject_kfold(subjects, 3, seed=1)
  other = splits.subject_kfold(subjects, 3, seed=2)
  for (_, a), (_, b) in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(first, other))


def test_subject_kfold_rejects_more_folds_than_subjects():
  with pytest.raises(ValueError, match="number of subjects = 3"):
    splits.subject_kfold(np.array([1, 1, 2, 3]), 4)
