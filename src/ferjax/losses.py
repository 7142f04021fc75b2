"""Classification losses: a registry chosen by ``loss.name``, one objective.

A loss is a per-example function of logits and (possibly smoothed) one-hot
or soft targets (FER+'s vote distributions); registering one is a function
and a ``Loss`` line in ``LOSSES`` (configs are validated against its names).
Everything around it is written once, here, for every loss: class weights,
label smoothing, soft and mixed targets (mixup, CutMix), GoogLeNet's
auxiliary heads, online hard example mining, and the evaluation loss.

Each device returns its share of the global mean (sum of its examples'
weighted losses over the global weight total); summing those shares over
devices gives exactly the one-device loss and gradient, whatever the split.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ferjax.axis import AXIS

LossFn = Callable[[jnp.ndarray, jnp.ndarray, "LossSpec"], jnp.ndarray]


def cross_entropy(logits: jnp.ndarray, targets: jnp.ndarray,
                  spec: "LossSpec") -> jnp.ndarray:
  """Softmax cross-entropy per example."""
  del spec
  return -(targets * jax.nn.log_softmax(logits)).sum(-1)


def focal(logits: jnp.ndarray, targets: jnp.ndarray,
          spec: "LossSpec") -> jnp.ndarray:
  """Focal loss (Lin et al. 2017): ``-sum_c t_c (1 - p_c)^gamma log p_c``.

  Confidently right examples contribute little, so training concentrates on
  the hard ones; gamma 0 is cross-entropy.
  """
  log_p = jax.nn.log_softmax(logits)
  modulation = jnp.power(1.0 - jnp.exp(log_p), spec.focal_gamma)
  return -(targets * modulation * log_p).sum(-1)


def l2_svm(logits: jnp.ndarray, targets: jnp.ndarray,
           spec: "LossSpec") -> jnp.ndarray:
  """One-vs-rest squared hinge (Tang 2013, "Deep Learning using Linear SVMs").

  ``sum_c max(0, 1 - t_c z_c)^2`` with ``t_c = +1`` for the true class and
  -1 for the others, written linear in the targets (``t_c`` weighs the
  ``+1`` term, ``1 - t_c`` the ``-1`` term) so that smoothed or mixed
  targets mix the losses of their classes. Weight decay plays the SVM's
  regularisation term.
  """
  del spec
  positive = jnp.square(jnp.maximum(0.0, 1.0 - logits))
  negative = jnp.square(jnp.maximum(0.0, 1.0 + logits))
  return (targets * positive + (1.0 - targets) * negative).sum(-1)


@dataclasses.dataclass(frozen=True)
class Loss:
  """A registered loss: its per-example function, and whether it is a loss
  of margins, not of probabilities (not invariant to shifting the logits by
  a constant, so evaluations give it the logits themselves)."""

  fn: LossFn
  margin: bool = False


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(cross_entropy),
    "focal": Loss(focal),
    "l2_svm": Loss(l2_svm, margin=True),
}
# ``loss.class_weights`` computed from the train split's class counts:
# inverse frequency, or the effective number of samples (Cui et al.).
CLASS_WEIGHTS = ("balanced", "effective_number")


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """The training objective, static under jit (see ``config.loss``)."""

  num_classes: int
  name: str = "cross_entropy"
  focal_gamma: float = 2.0
  ohem_fraction: float = 1.0
  label_smoothing: float = 0.0
  aux_weight: float = 0.3
  class_weights: tuple[float, ...] | None = None

  @classmethod
  def from_config(cls, loss: Any, *, num_classes: int,
                  class_weights: tuple[float, ...] | None) -> "LossSpec":
    return cls(num_classes=num_classes, name=loss.name,
               focal_gamma=float(loss.focal_gamma),
               ohem_fraction=float(loss.ohem_fraction),
               label_smoothing=float(loss.label_smoothing),
               aux_weight=float(loss.aux_weight), class_weights=class_weights)


@dataclasses.dataclass(frozen=True)
class Mix:
  """Mixed labels (mixup, CutMix): each example is ``lam`` of its own label
  and ``1 - lam`` of ``partner``'s (of ``partner_targets``, the partners'
  soft targets, when training on soft targets)."""

  partner: jnp.ndarray
  lam: jnp.ndarray
  partner_targets: jnp.ndarray | None = None


def _targets(labels: jnp.ndarray, spec: LossSpec, smoothing: float,
             mix: Mix | None, soft: jnp.ndarray | None) -> jnp.ndarray:
  """(Smoothed, mixed) targets, float32: one-hot labels, or ``soft``."""

  def target(y, t):
    t = jax.nn.one_hot(y, spec.num_classes) if t is None else t
    if smoothing:
      t = t * (1.0 - smoothing) + smoothing / spec.num_classes
    return t.astype(jnp.float32)

  if mix is None:
    return target(labels, soft)
  return (mix.lam * target(labels, soft) +
          (1.0 - mix.lam) * target(mix.partner, mix.partner_targets))


def per_example(logits: jnp.ndarray, labels: jnp.ndarray, spec: LossSpec, *,
                label_smoothing: float | None = None,
                mix: Mix | None = None,
                targets: jnp.ndarray | None = None) -> jnp.ndarray:
  """The registered loss of each example, float32.

  ``targets``, (N, C) class distributions, replace the one-hot ``labels``
  as the loss's target (FER+'s ``crossentropy`` mode); ``labels`` still
  weigh the example (class weights).
  """
  smoothing = (spec.label_smoothing if label_smoothing is None
               else label_smoothing)
  return LOSSES[spec.name].fn(
      logits.astype(jnp.float32),
      _targets(labels, spec, smoothing, mix, targets), spec)


def example_weights(labels: jnp.ndarray,
                    class_weights: Sequence[float] | None,
                    mix: Mix | None = None) -> jnp.ndarray:
  """Each example's loss weight: its class's weight (mixed as its label is),
  or 1 when unweighted."""
  if class_weights is None:
    return jnp.ones(labels.shape, jnp.float32)
  table = jnp.asarray(class_weights, jnp.float32)
  if mix is None:
    return table[labels]
  return mix.lam * table[labels] + (1.0 - mix.lam) * table[mix.partner]


def effective_number_weights(counts: Sequence[int],
                             beta: float) -> tuple[float, ...]:
  """Class-balanced weights (Cui et al. 2019): ``(1 - beta) / (1 - beta^n)``.

  The inverse of a class's effective number of samples ``(1 - beta^n) /
  (1 - beta)``, which grows like ``n`` for small classes and saturates at
  ``1 / (1 - beta)``: beta 0 weighs every class alike, beta -> 1 approaches
  inverse frequency. Normalised to sum to the number of classes, as in the
  paper; an empty class gets the weight of a class of one example.
  """
  n = np.maximum(np.asarray(counts, np.float64), 1.0)
  weights = (1.0 - beta) / (1.0 - np.power(beta, n)) if beta > 0 else (
      np.ones_like(n))
  return tuple(float(w) for w in weights * len(n) / weights.sum())


def hardest(losses: jnp.ndarray, fraction: float) -> jnp.ndarray:
  """1.0 for this device's examples among the hardest of the global batch.

  The ``ceil(fraction * global batch)`` examples with the highest loss are
  chosen over the whole global batch (gathered from every device), ties
  going to the earlier position, so the same examples are chosen whatever
  the number of devices. Call under ``Parallel.map``.
  """
  everyone = lax.all_gather(lax.stop_gradient(losses), AXIS, tiled=True)
  n = everyone.shape[0]
  k = min(n, max(1, math.ceil(fraction * n)))
  position = jnp.arange(n)
  # An example's rank: those with a higher loss, or equal and earlier.
  higher = everyone[None, :] > everyone[:, None]
  tied_before = ((everyone[None, :] == everyone[:, None]) &
                 (position[None, :] < position[:, None]))
  chosen = ((higher | tied_before).sum(1) < k).astype(jnp.float32)
  start = lax.axis_index(AXIS) * losses.shape[0]
  return lax.dynamic_slice(chosen, (start,), (losses.shape[0],))


def device_loss(logits: jnp.ndarray, aux_logits: Sequence[jnp.ndarray],
                labels: jnp.ndarray, spec: LossSpec,
                mix: Mix | None = None,
                targets: jnp.ndarray | None = None) -> jnp.ndarray:
  """This device's share of the global training loss.

  Weighted mean over the (hardest, with OHEM) examples of the global batch
  of the main head's loss, plus ``aux_weight`` times each auxiliary head's.
  ``targets``: soft targets in place of the one-hot labels (``per_example``).
  """
  weights = example_weights(labels, spec.class_weights, mix)
  main = per_example(logits, labels, spec, mix=mix, targets=targets)
  if spec.ohem_fraction < 1.0:
    weights = weights * hardest(main, spec.ohem_fraction)
  total_weight = lax.psum(lax.stop_gradient(weights).sum(), AXIS)
  loss = (weights * main).sum() / total_weight
  for aux in aux_logits:
    loss += spec.aux_weight * (
        weights * per_example(aux, labels, spec, mix=mix, targets=targets)
    ).sum() / total_weight
  return loss


def eval_losses(log_probs: jnp.ndarray, scores: jnp.ndarray,
                labels: jnp.ndarray, spec: LossSpec) -> jnp.ndarray:
  """Per-example evaluation loss: the registered loss on the true labels.

  The same definition as training, without label smoothing, mixing, class
  weights or mining, which shape training, not the measurement. Losses of
  probabilities see log-probabilities (logits shifted by a constant;
  ten-crop passes the log of the crops' mean probabilities); margin losses
  see ``scores``, the logits (ten-crop: the crops' mean logits).
  """
  inputs = scores if LOSSES[spec.name].margin else log_probs
  return per_example(inputs, labels, spec, label_smoothing=0.0)
