"""Optax SGD with the schedules FER papers use, including reduce-on-plateau.

Weight decay is coupled L2, added to the gradient before momentum exactly as
``torch.optim.SGD(weight_decay=...)`` does, so published PyTorch recipes carry
over unchanged. Reduce-on-plateau acts on an evaluation metric, which only the
loop knows: its state lives in the TrainState and scales every update (the
same as scaling SGD's learning rate) so that it is checkpointed with the run.
"""

import flax
import ml_collections
import numpy as np
import optax


@flax.struct.dataclass
class PlateauState:
  """Reduce-on-plateau bookkeeping; ``best`` is NaN until the first eval."""

  scale: np.ndarray
  best: np.ndarray
  num_bad: np.ndarray


def plateau_init() -> PlateauState:
  return PlateauState(scale=np.float32(1.0), best=np.float32(np.nan),
                      num_bad=np.int32(0))


def plateau_update(state: PlateauState, value: float, *, mode: str,
                   factor: float, patience: int,
                   min_scale: float) -> PlateauState:
  """One evaluation's worth of torch's ReduceLROnPlateau (no threshold)."""
  best, num_bad, scale = float(state.best), int(state.num_bad), float(
      state.scale)
  improved = np.isnan(best) or (value > best if mode == "max" else value < best)
  if improved:
    best, num_bad = value, 0
  else:
    num_bad += 1
    if num_bad > patience:
      scale, num_bad = max(scale * factor, min_scale), 0
  return PlateauState(scale=np.float32(scale), best=np.float32(best),
                      num_bad=np.int32(num_bad))


def learning_rate_schedule(opt: ml_collections.ConfigDict, *,
                           steps_per_epoch: int,
                           total_steps: int) -> optax.Schedule:
  """The base learning rate per step (before any plateau scaling)."""
  lr = opt.learning_rate
  warmup = int(round(opt.warmup_epochs * steps_per_epoch))
  if opt.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup else lr, peak_value=lr,
        warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
        end_value=0.0)
  if opt.schedule == "piecewise":
    main = optax.piecewise_constant_schedule(
        lr, {int(b * steps_per_epoch) - warmup: opt.decay_factor
             for b in opt.boundaries_epochs})
  else:
    main = optax.constant_schedule(lr)
  if not warmup:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(opt: ml_collections.ConfigDict,
                   schedule: optax.Schedule) -> optax.GradientTransformation:
  """Clip -> coupled weight decay -> SGD (momentum, Nesterov) -> -lr."""
  parts = []
  if opt.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  if opt.weight_decay:
    parts.append(optax.add_decayed_weights(opt.weight_decay))
  parts.append(optax.sgd(schedule, momentum=opt.momentum or None,
                         nesterov=opt.nesterov))
  return optax.chain(*parts)
