"""Classification losses: a registry chosen by ``loss.name``, one objective.

A loss is a per-example function of logits and (possibly smoothed) one-hot
targets; registering one is a function and a line in ``LOSSES`` (configs are
validated against it). Everything around it is written once, here, for
every loss: class weights, label smoothing, GoogLeNet's auxiliary heads,
online hard example mining, and the evaluation loss.

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


LOSSES: dict[str, LossFn] = {
    "cross_entropy": cross_entropy,
    "focal": focal,
}


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


def per_example(logits: jnp.ndarray, labels: jnp.ndarray, spec: LossSpec, *,
                label_smoothing: float | None = None) -> jnp.ndarray:
  """The registered loss of each example, float32."""
  targets = jax.nn.one_hot(labels, spec.num_classes)
  smoothing = (spec.label_smoothing if label_smoothing is None
               else label_smoothing)
  if smoothing:
    targets = targets * (1.0 - smoothing) + smoothing / spec.num_classes
  return LOSSES[spec.name](logits.astype(jnp.float32), targets, spec)


def example_weights(labels: jnp.ndarray,
                    class_weights: Sequence[float] | None) -> jnp.ndarray:
  """Each example's loss weight: its class's weight, or 1 when unweighted."""
  if class_weights is None:
    return jnp.ones(labels.shape, jnp.float32)
  return jnp.asarray(class_weights, jnp.float32)[labels]


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
                labels: jnp.ndarray, spec: LossSpec) -> jnp.ndarray:
  """This device's share of the global training loss.

  Weighted mean over the (hardest, with OHEM) examples of the global batch
  of the main head's loss, plus ``aux_weight`` times each auxiliary head's.
  """
  weights = example_weights(labels, spec.class_weights)
  main = per_example(logits, labels, spec)
  if spec.ohem_fraction < 1.0:
    weights = weights * hardest(main, spec.ohem_fraction)
  total_weight = lax.psum(lax.stop_gradient(weights).sum(), AXIS)
  loss = (weights * main).sum() / total_weight
  for aux in aux_logits:
    loss += spec.aux_weight * (
        weights * per_example(aux, labels, spec)).sum() / total_weight
  return loss


def eval_losses(log_probs: jnp.ndarray, labels: jnp.ndarray,
                spec: LossSpec) -> jnp.ndarray:
  """Per-example evaluation loss: the registered loss on the true labels.

  The same definition as training, on log-probabilities (logits shifted by
  a constant, so any loss of logits applies; ten-crop passes the log of the
  crops' mean probabilities); without label smoothing, class weights or
  mining, which shape training, not the measurement.
  """
  return per_example(log_probs, labels, spec, label_smoothing=0.0)
