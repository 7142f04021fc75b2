"""Optax SGD with the schedules FER papers use, including reduce-on-plateau.

Weight decay is coupled L2, added to the gradient before momentum exactly as
``torch.optim.SGD(weight_decay=...)`` does, so published PyTorch recipes carry
over unchanged. Reduce-on-plateau acts on an evaluation metric, which only the
loop knows: its state lives in the TrainState and scales every update (the
same as scaling SGD's learning rate) so that it is checkpointed with the run.

Fine-tuning selects parameters by regular expressions that must match the
whole '/'-joined path (``Conv_0/kernel``, ``aux1_head/fc/bias``): frozen ones
get neither an update nor weight decay, and are left out of the clipping
norm; a learning-rate multiplier scales a parameter's final update, which for
SGD is the same as scaling its learning rate (torch's parameter groups).
"""

import re
from typing import Any

import flax
import jax
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
  """One evaluation's worth of torch's ReduceLROnPlateau (no threshold).

  ``value`` is compared in the float32 that ``best`` is stored in: otherwise
  a metric equal to the best (the same accuracy again) whose float32 rounds
  down would count as an improvement and hold the plateau off.
  """
  best, num_bad, scale = float(state.best), int(state.num_bad), float(
      state.scale)
  value = float(np.float32(value))
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
  """Clip -> coupled weight decay -> SGD (momentum, Nesterov) -> -lr.

  Multipliers scale the result; frozen parameters bypass the whole chain.
  """
  parts = []
  if opt.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(opt.grad_clip_norm))
  if opt.weight_decay:
    parts.append(optax.add_decayed_weights(opt.weight_decay))
  parts.append(optax.sgd(schedule, momentum=opt.momentum or None,
                         nesterov=opt.nesterov))
  multipliers = tuple((str(p), float(m))
                      for p, m in opt.get("lr_multipliers") or ())
  if multipliers:
    parts.append(_scale_by_pattern(multipliers))
  tx = optax.chain(*parts)
  frozen = tuple(opt.get("frozen") or ())
  if not frozen:
    return tx

  def labels(params: Any) -> Any:
    matched = match_patterns(params, frozen, "optimizer.frozen")
    return jax.tree.map(lambda i: "train" if i < 0 else "frozen", matched)

  return optax.multi_transform(
      {"train": tx, "frozen": optax.set_to_zero()}, labels)


def path_name(path: tuple[Any, ...]) -> str:
  """'Conv_0/kernel' for a pytree path into a variables dict."""
  return "/".join(str(getattr(k, "key", k)) for k in path)


def match_patterns(params: Any, patterns: tuple[str, ...], field: str) -> Any:
  """Per leaf, the index of the first pattern matching its path, or -1.

  A pattern that matches no parameter is almost always a typo, so it is an
  error rather than a silent no-op.
  """
  compiled = [re.compile(p) for p in patterns]
  used = set()

  def first(path: tuple[Any, ...], _: Any) -> int:
    name = path_name(path)
    for i, pattern in enumerate(compiled):
      if pattern.fullmatch(name):
        used.add(i)
        return i
    return -1

  matched = jax.tree_util.tree_map_with_path(first, params)
  unused = [patterns[i] for i in range(len(patterns)) if i not in used]
  if unused:
    names = [path_name(p) for p, _ in
             jax.tree_util.tree_flatten_with_path(params)[0]]
    raise ValueError(
        f"config.{field}: pattern(s) {', '.join(map(repr, unused))} match no "
        f"parameter; patterns must match a whole path, one of: "
        f"{', '.join(names)}")
  return matched


def hold_frozen_statistics(params: Any, old: Any, new: Any,
                           frozen: tuple[str, ...]) -> Any:
  """``new`` batch statistics, except ``old`` for layers entirely frozen.

  A BatchNorm layer whose scale and bias are frozen would otherwise keep
  moving its running mean and variance toward the new data, changing what
  the frozen layer computes at test time.
  """
  matched = match_patterns(params, frozen, "optimizer.frozen")
  by_layer: dict[str, list[bool]] = {}
  for path, index in jax.tree_util.tree_flatten_with_path(matched)[0]:
    by_layer.setdefault(path_name(path).rpartition("/")[0], []).append(
        index >= 0)

  def pick(path: tuple[Any, ...], o: Any, n: Any) -> Any:
    layer = path_name(path).rpartition("/")[0]
    return o if all(by_layer.get(layer, [False])) else n

  return jax.tree_util.tree_map_with_path(pick, old, new)


def _scale_by_pattern(
    multipliers: tuple[tuple[str, float], ...]) -> optax.GradientTransformation:
  """Multiplies each update by its first matching pattern's factor (else 1)."""
  patterns = tuple(p for p, _ in multipliers)

  def update(updates: Any, state: optax.EmptyState,
             params: Any = None) -> tuple[Any, optax.EmptyState]:
    del params
    matched = match_patterns(updates, patterns, "optimizer.lr_multipliers")
    scaled = jax.tree.map(
        lambda u, i: u if i < 0 else u * multipliers[i][1], updates, matched)
    return scaled, state

  def init(params: Any) -> optax.EmptyState:
    match_patterns(params, patterns, "optimizer.lr_multipliers")
    return optax.EmptyState()

  return optax.GradientTransformation(init, update)
