"""Late fusion's weight: fitted on validation, zero for a useless SVM,
and a lift when the SVM knows what the CNN does not."""

import numpy as np

from ferjax.evaluate import late_fusion


def problem(seed: int, informative: bool):
  """A CNN right on classes 0-2 and guessing on 3-5; an SVM right on 3-5
  (or pure noise)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 6, 3000)
  cnn = rng.normal(0, 1, (3000, 6))
  known = labels < 3
  cnn[known, labels[known]] += 3.0
  log_p = cnn - np.log(np.exp(cnn).sum(-1, keepdims=True))
  svm = rng.normal(0, 1, (3000, 6))
  if informative:
    svm[~known, labels[~known]] += 3.0
  return log_p, svm, labels


def accuracy(z, labels):
  return float((z.argmax(-1) == labels).mean())


def test_a_useful_svm_gets_weight_and_lifts_the_test_accuracy():
  weight = late_fusion.fit_weight(*problem(0, True))
  assert weight > 0.3
  log_p, svm, labels = problem(1, True)
  assert (accuracy(log_p + weight * svm, labels)
          > accuracy(log_p, labels) + 0.2)


def test_a_noise_svm_gets_no_weight():
  assert late_fusion.fit_weight(*problem(2, False)) < 0.05
