"""Temperature scaling and the measures of calibration (NLL, ECE, bins).

A classifier's softmax is calibrated when, of the examples it gives
confidence p, a fraction p is right. Temperature scaling (Guo et al., 2017)
divides the logits by one scalar T > 0 fitted to minimise the negative
log-likelihood on held-out data: the argmax, hence accuracy, is unchanged.
Pure NumPy in float64 on the host: the same inputs give the same T.

Logits may be any per-example shift of the true ones, log-probabilities
included (``softmax(log p / T) == softmax(z / T)``), which is what
evaluation hands over; for ten-crop they are the log of the crops' mean
probabilities.
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

ECE_BINS = 15
# The temperatures fitted; a stored one outside is damage (``RunDir``).
TEMPERATURE_RANGE = (0.01, 100.0)
# Golden-section bracket for log T.
_LOG_T_RANGE = tuple(map(math.log, TEMPERATURE_RANGE))
# Fewer examples fit noise: one right answer alone drives T to its bound.
MIN_EXAMPLES = 50
_GOLDEN = (math.sqrt(5) - 1) / 2


def _log_softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(axis=-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _checked(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels, np.int64)
  if logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(f"expected logits (N, C) and labels (N,), got "
                     f"{logits.shape} and {labels.shape}")
  if not len(labels):
    raise ValueError("calibration needs at least one example")
  return logits, labels


def scaled_probabilities(logits: Any, temperature: float = 1.0) -> np.ndarray:
  """``softmax(logits / temperature)``, float64."""
  return np.exp(_log_softmax(np.asarray(logits, np.float64) / temperature))


def nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
  """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
  logits, labels = _checked(logits, labels)
  log_p = _log_softmax(logits / temperature)
  return float(-log_p[np.arange(len(labels)), labels].mean())


class DegenerateFit(ValueError):
  """Data a temperature cannot be fitted on: too few examples, one class,
  or an NLL that keeps falling to the end of the range searched."""


def fit_temperature(logits: Any, labels: Any) -> float:
  """The T in [0.01, 100] minimising ``nll(logits / T)``.

  NLL is convex in 1/T, so unimodal in log T: golden-section search in log T
  to a relative precision of 1e-9, deterministic. Raises DegenerateFit,
  saying why, where the minimum is not a calibration: fewer than
  ``MIN_EXAMPLES`` examples, a single class, an NLL that T does not change
  (equal scores), or a minimum at a bound of the range (the NLL still falling as T goes to 0 or to infinity: scores that
  separate the split perfectly, or carry no information about it).
  """
  logits, labels = _checked(logits, labels)
  if len(labels) < MIN_EXAMPLES:
    raise DegenerateFit(
        f"{len(labels)} examples, fewer than the {MIN_EXAMPLES} a "
        "temperature needs; fit it on a larger split")
  if len(np.unique(labels)) < 2:
    raise DegenerateFit(
        f"every example is of one class ({int(labels[0])}): a temperature "
        "fitted there says how sure the model may be of that class alone; "
        "fit it on a split with every class")
  lo, hi = _LOG_T_RANGE
  ends = nll(logits, labels, math.exp(lo)), nll(logits, labels, math.exp(hi))
  if abs(ends[0] - ends[1]) <= 1e-12 * max(1.0, abs(ends[0])):
    raise DegenerateFit("the NLL does not depend on T: the model gives every "
                        "class the same score")
  a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
  fa, fb = (nll(logits, labels, math.exp(a)),
            nll(logits, labels, math.exp(b)))
  while hi - lo > 1e-9:
    if fa <= fb:
      hi, b, fb = b, a, fa
      a = hi - _GOLDEN * (hi - lo)
      fa = nll(logits, labels, math.exp(a))
    else:
      lo, a, fa = a, b, fb
      b = lo + _GOLDEN * (hi - lo)
      fb = nll(logits, labels, math.exp(b))
  fitted = (lo + hi) / 2
  low, high = _LOG_T_RANGE
  if min(fitted - low, high - fitted) < 1e-6:
    bound, why = ((TEMPERATURE_RANGE[0], "the scores separate the split "
                   "perfectly, so any sharpening helps") if fitted - low < 1e-6
                  else (TEMPERATURE_RANGE[1], "the scores carry no "
                        "information about the labels, so flattening them "
                        "helps"))
    raise DegenerateFit(
        f"the NLL is least at T = {bound:g}, the end of the range searched "
        f"{TEMPERATURE_RANGE}: {why}; no temperature calibrates this model "
        "on this split")
  return math.exp(fitted)


def reliability_bins(probabilities: Any, labels: Any,
                     num_bins: int = ECE_BINS) -> dict[str, list[float]]:
  """Per equal-width confidence bin ``((i/n, (i+1)/n]``): example count,
  mean confidence and accuracy (0 where empty): a reliability diagram."""
  probabilities, labels = _checked(probabilities, labels)
  confidence = probabilities.max(axis=-1)
  correct = (probabilities.argmax(axis=-1) == labels).astype(np.float64)
  index = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0,
                  num_bins - 1)
  count = np.bincount(index, minlength=num_bins).astype(np.float64)
  conf_sum = np.bincount(index, confidence, minlength=num_bins)
  hit_sum = np.bincount(index, correct, minlength=num_bins)
  safe = np.maximum(count, 1)
  return {"count": count.astype(int).tolist(),
          "confidence": (conf_sum / safe).tolist(),
          "accuracy": (hit_sum / safe).tolist()}


def ece(probabilities: Any, labels: Any, num_bins: int = ECE_BINS) -> float:
  """Expected calibration error: the count-weighted mean |accuracy -
  confidence| over ``num_bins`` equal-width confidence bins."""
  bins = reliability_bins(probabilities, labels, num_bins)
  count = np.asarray(bins["count"], np.float64)
  gap = np.abs(np.subtract(bins["accuracy"], bins["confidence"]))
  return float((count * gap).sum() / count.sum())


def measures(logits: Any, labels: Any,
             temperature: float | None = None) -> dict[str, Any]:
  """NLL and ECE of softmax(logits), and with ``temperature`` also of
  softmax(logits / T) (the ``_calibrated`` entries)."""
  out = {"nll": nll(logits, labels),
         "ece": ece(scaled_probabilities(logits), labels)}
  if temperature is not None:
    out.update(temperature=float(temperature),
               nll_calibrated=nll(logits, labels, temperature),
               ece_calibrated=ece(scaled_probabilities(logits, temperature),
                                  labels))
  return out


def calibrated_flag(members: Sequence[bool]) -> bool | str:
  """An ensemble's "calibrated": True when every member's scores are
  temperature-scaled, False when none are, "partial" when some are (their
  mean then mixes calibrated and raw scores; each member says which)."""
  if all(members):
    return True
  return "partial" if any(members) else False
