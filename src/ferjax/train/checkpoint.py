"""Orbax checkpoints of the TrainState: latest N plus the best by a metric.

Orbax writes each step to a temporary directory and renames it when
complete, so a ``kill -9`` during a save leaves the previous checkpoints
intact and the half-written one invisible.
"""

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers


class Checkpoints:
  """The run's checkpoint directory."""

  def __init__(self, directory: str | pathlib.Path, *, keep: int = 2,
               best_metric: str | None = None, best_mode: str = "max",
               read_only: bool = False):
    self.best_metric = best_metric
    self._best_mode = best_mode
    worst = float("-inf") if best_mode == "max" else float("inf")

    def score(metrics: dict[str, float]) -> float:
      # Mid-epoch checkpoints carry no eval metric: they rank last.
      return metrics.get(best_metric, worst)

    policies = [checkpoint_managers.LatestN(n=keep)]
    if best_metric:
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=score, reverse=best_mode == "min", n=1))
    self._manager = ocp.CheckpointManager(
        pathlib.Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(
                policies),
            # best_fn makes Orbax store each step's metrics next to it, so
            # `best` survives a restart.
            best_fn=score if best_metric else None, best_mode=best_mode,
            read_only=read_only, create=not read_only,
            enable_async_checkpointing=True),
        item_handlers=ocp.StandardCheckpointHandler())

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the best ``best_metric``; the latest if none has one."""
    scored = []
    for step in self._manager.all_steps():
      metrics = self._manager.metrics(step)
      if metrics and self.best_metric in metrics:
        scored.append((float(metrics[self.best_metric]), step))
    if not scored:
      return self.latest_step()
    sign = 1.0 if self._best_mode == "max" else -1.0
    return max(scored, key=lambda t: (sign * t[0], -t[1]))[1]

  def save(self, step: int, state: Any,
           metrics: dict[str, float] | None = None) -> None:
    """Saves asynchronously; training goes on while Orbax writes."""
    self._manager.save(step, args=ocp.args.StandardSave(state),
                       metrics=dict(metrics or {}), force=True)

  def restore(self, step: int, template: Any) -> Any:
    """Restores ``step`` as host numpy arrays shaped like ``template``."""
    abstract = jax.tree.map(
        lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), template)
    restored = self._manager.restore(
        step, args=ocp.args.StandardRestore(abstract))
    return jax.device_get(restored)

  def restore_variables(self, step: int) -> dict[str, Any]:
    """Just the model variables of ``step``, without building a TrainState.

    Inference needs no optimizer; the saved tree is read back as plain dicts.
    """
    metadata = self._manager.item_metadata(step)
    template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                            dict(metadata))
    restored = self._manager.restore(
        step, args=ocp.args.StandardRestore(template))
    return {"params": restored["params"],
            "batch_stats": restored.get("batch_stats") or {}}

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
