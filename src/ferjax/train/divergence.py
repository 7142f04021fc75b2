"""Stops a run whose loss or parameters stop being finite numbers.

Too high a learning rate sends the loss to inf, then NaN, and every later
step computes garbage. Going on wastes the run's time, and a checkpoint of
NaN parameters would become the run's "latest" and "best": so the run stops
with an error at the first train summary or checkpoint that shows it, and
the checkpoints already written (all finite) stay as they are.
"""

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from ferjax.run.checkpoint import Checkpoints
from ferjax.train.state import TrainState

_ADVICE = ("lower config.optimizer.learning_rate or set "
           "config.optimizer.grad_clip_norm")


class TrainingDiverged(ValueError):
  """A run produced a non-finite loss or parameter; the message says where."""


def _stop(ckpt: Checkpoints, what: str) -> None:
  ckpt.wait()  # The last good checkpoint may still be being written.
  latest = ckpt.latest_step()
  kept = (f"the latest checkpoint (step {latest}) is from before it"
          if latest is not None else "no checkpoint was written")
  raise TrainingDiverged(f"training diverged: {what}; stopped, {kept}; "
                         f"{_ADVICE}")


def check_train_metrics(step: int, metrics: Mapping[str, float],
                        ckpt: Checkpoints) -> None:
  """Raises TrainingDiverged if a train summary holds a non-finite value."""
  bad = {k: v for k, v in metrics.items()
         if isinstance(v, float) and not math.isfinite(v)}
  if bad:
    _stop(ckpt, f"{', '.join(f'train {k}={v}' for k, v in bad.items())} "
          f"in the summary at step {step}")


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
  checks = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.stack(checks).all() if checks else jnp.bool_(True)


def _one_replica(tree: Any) -> Any:
  """Device 0's copy of every array of a replicated tree.

  Every device holds the same state (gradients and BatchNorm statistics are
  averaged over them), so one copy decides. Checking it on one device keeps
  the check free of cross-device collectives: on CPU devices a collective
  outside the train step's one-program-in-flight guard can miss XLA's
  rendezvous under load and abort the process (``parallel.py``).
  """
  return jax.tree.map(lambda x: x.addressable_shards[0].data
                      if isinstance(x, jax.Array) else x, tree)


def check_state(step: int, state: TrainState, ckpt: Checkpoints) -> None:
  """Raises TrainingDiverged if ``state``'s variables or optimizer state (about
  to be saved) are not finite; the plateau's best is NaN until its first
  metric."""
  if not bool(_all_finite(_one_replica((state.params, state.batch_stats,
                                        state.opt_state)))):
    _stop(ckpt, f"non-finite parameters or optimizer state at step {step}")
