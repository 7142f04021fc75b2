"""Classification losses, written as sums so that devices can add them up.

Each device returns its share of the global mean (sum of its examples'
weighted losses over the global weight total); summing those shares over
devices gives exactly the one-device loss and gradient, whatever the split.
"""

import jax
import jax.numpy as jnp
import optax


def cross_entropy_terms(logits: jnp.ndarray, labels: jnp.ndarray, *,
                        num_classes: int,
                        label_smoothing: float = 0.0) -> jnp.ndarray:
  """Per-example softmax cross-entropy, float32, with optional smoothing."""
  targets = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def example_weights(labels: jnp.ndarray,
                    class_weights: jnp.ndarray | None) -> jnp.ndarray:
  """Each example's loss weight: its class's weight, or 1 when unweighted."""
  if class_weights is None:
    return jnp.ones(labels.shape, jnp.float32)
  return jnp.asarray(class_weights, jnp.float32)[labels]
