"""Per-device train and eval steps: pure functions of explicit state.

Both run under ``Parallel.map`` with the axis name ``batch``. The whole
training split sits on every device; a step slices its device's share of the
global batch out of the epoch's permutation, so batches are built on device
with no host round trip, and the global batch is the same whatever the
device count.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ferjax.data import mix as mix_lib
from ferjax.data import preprocess
from ferjax import losses
from ferjax.evaluate.views import ViewsFn
from ferjax.train import optimizer
from ferjax.train.parallel import AXIS
from ferjax.train.state import TrainState

AugmentFn = Callable[[jax.Array, jnp.ndarray], jnp.ndarray]
# (key, n) -> (n,) bool: which images the AugmentFn of that key mirrors.
FlipsFn = Callable[[jax.Array, int], jnp.ndarray]

# Folded into a step's key for mixing: a stream of its own, so turning
# mixing on leaves the augmentation and dropout keys of every step as they
# were.
_MIX_STREAM = 0x6D6978
# Likewise for the labels drawn from soft targets (``soft_labels="sample"``).
_LABEL_STREAM = 0x6C6162


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """How stored uint8 images become model inputs (static under jit)."""

  image_size: tuple[int, int]
  channels: int
  mean: tuple[float, ...]
  std: tuple[float, ...]

  def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
    return preprocess.to_model_input(
        images, image_size=self.image_size, channels=self.channels,
        mean=self.mean, std=self.std)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """Static facts the train step needs."""

  global_batch: int
  per_device_batch: int
  steps_per_epoch: int
  inputs: InputSpec
  loss: losses.LossSpec
  streaming: bool = False
  # optimizer.frozen when its BatchNorm statistics stay fixed too.
  frozen_statistics: tuple[str, ...] = ()
  mix: mix_lib.MixSpec | None = None  # Mixup / CutMix (input.mix).
  ema_decay: float = 0.0  # optimizer.ema_decay; 0: no moving average.
  # loading.soft_labels: train on data["targets"], a label drawn from them
  # ("sample") or themselves ("distribution"); None: on data["labels"].
  soft_labels: str | None = None


def _device_batch_indices(perm: jnp.ndarray, step: jnp.ndarray,
                          spec: TrainSpec) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Rows of ``data`` for this device, and their positions in the epoch.

  In memory, ``data`` is the whole split and rows come from the epoch's
  permutation; streamed, ``data`` is already this device's share of the
  global batch (a sharded argument).
  """
  rows = jnp.arange(spec.per_device_batch)
  within = lax.axis_index(AXIS) * spec.per_device_batch + rows
  positions = (step % spec.steps_per_epoch) * spec.global_batch + within
  return (rows if spec.streaming else perm[positions]), positions


def mix_batch(key: jax.Array, images: jnp.ndarray, labels: jnp.ndarray,
              spec: TrainSpec, targets: jnp.ndarray | None = None
              ) -> tuple[jnp.ndarray, losses.Mix]:
  """This device's images mixed with their partners in the global batch.

  Example ``i`` of the global batch is paired with example ``G - 1 - i``
  (the batch reversed, as timm pairs them), gathered from whichever device
  holds it, so the pairs, like ``lam``, do not depend on the device count.
  Soft ``targets`` are paired the same way.
  """
  everyone = lax.all_gather(images, AXIS, tiled=True)
  all_labels = lax.all_gather(labels, AXIS, tiled=True)
  within = (lax.axis_index(AXIS) * spec.per_device_batch +
            jnp.arange(spec.per_device_batch))
  partner = spec.global_batch - 1 - within
  mixed, lam = mix_lib.mix(key, images, everyone[partner], spec.mix)
  partner_targets = (None if targets is None else
                     lax.all_gather(targets, AXIS, tiled=True)[partner])
  return mixed, losses.Mix(partner=all_labels[partner], lam=lam,
                           partner_targets=partner_targets)


def draw_labels(key: jax.Array, targets: jnp.ndarray,
                positions: jnp.ndarray) -> jnp.ndarray:
  """A label per example drawn from its class distribution (FER+'s PLD).

  The paper's code draws a one-hot target each time it reads an image; here
  each example's key is folded from its position in the global batch, and
  ``key`` from (rng, step), so the draw depends on neither the device count
  nor where a run resumed.
  """
  keys = jax.vmap(lambda p: jax.random.fold_in(key, p))(positions)
  log_p = jnp.log(jnp.maximum(targets, 0.0))  # -inf where p is 0: never.
  return jax.vmap(jax.random.categorical)(keys, log_p).astype(jnp.int32)


def geometry_kwargs(geometry: jnp.ndarray | None) -> dict[str, Any]:
  """The model's geometry input, for models that fuse it (none else take
  the keyword)."""
  return {} if geometry is None else {"geometry": geometry}


def _rows(data: dict[str, jnp.ndarray],
          idx: jnp.ndarray) -> jnp.ndarray | None:
  """Rows ``idx`` of the split's geometry, if it carries any."""
  return data["geometry"][idx] if "geometry" in data else None


def update_ema(ema: dict[str, Any], variables: dict[str, Any],
               decay: float) -> dict[str, Any]:
  """``decay * ema + (1 - decay) * variables``, leaf by leaf."""
  return jax.tree.map(lambda e, v: decay * e + (1.0 - decay) * v, ema,
                      variables)


def train_step(state: TrainState, data: dict[str, jnp.ndarray],
               perm: jnp.ndarray, *, model: flax.linen.Module,
               tx: optax.GradientTransformation, schedule: optax.Schedule,
               spec: TrainSpec, augment: AugmentFn | None = None,
               flips: FlipsFn | None = None
               ) -> tuple[TrainState, dict[str, jnp.ndarray]]:
  """One SGD step on the global batch ``step`` of the epoch.

  ``data`` and ``perm`` come from ``input_pipeline``: the split and the
  epoch's permutation, or (streaming) the device's rows and a placeholder.

  Augmentation keys are folded from each example's position in the global
  batch, so augmented pixels do not depend on the device count; dropout keys
  are folded from (rng, step, device index); mixing's key from (rng, step)
  alone. With ``spec.ema_decay`` the moving average of the variables follows
  the new ones. With ``spec.soft_labels`` the loss trains on ``data``'s
  ``targets`` (``draw_labels``, or as soft targets); the accuracy metric
  stays on the stored labels. Where ``data`` has ``geometry`` (each
  example's descriptor and its mirror image's, ``data.geometry_features``)
  the model reads the row of the same example, the mirror image's where
  ``flips`` says its augmentation mirrored the image.
  """
  idx, positions = _device_batch_indices(perm, state.step, spec)
  geometry = _rows(data, idx)
  stored = data["labels"][idx]
  labels, targets = stored, None
  images = preprocess.to_unit_float(data["images"][idx])
  step_key = jax.random.fold_in(state.rng, state.step)
  if spec.soft_labels == "sample":
    labels = draw_labels(jax.random.fold_in(step_key, _LABEL_STREAM),
                         data["targets"][idx], positions)
  elif spec.soft_labels == "distribution":
    targets = data["targets"][idx]
  augment_key, dropout_key = jax.random.split(step_key)
  if augment is not None:
    keys = jax.vmap(lambda p: jax.random.fold_in(augment_key, p))(positions)
    images = jax.vmap(lambda k, x: augment(k, x[None])[0])(keys, images)
    if geometry is not None and flips is not None:
      flipped = jax.vmap(lambda k: flips(k, 1)[0])(keys)
      geometry = jnp.where(flipped[:, None], geometry[:, 1], geometry[:, 0])
  if geometry is not None and geometry.ndim == 3:  # Nothing mirrored it.
    geometry = geometry[:, 0]
  mixed = None
  if spec.mix is not None:
    images, mixed = mix_batch(jax.random.fold_in(step_key, _MIX_STREAM),
                              images, labels, spec, targets)
  x = spec.inputs(images)
  dropout_key = jax.random.fold_in(dropout_key, lax.axis_index(AXIS))

  def loss_fn(params):
    logits, new_vars = model.apply(
        {"params": params, "batch_stats": state.batch_stats}, x, train=True,
        rngs={"dropout": dropout_key}, mutable=["batch_stats", "aux_logits"],
        **geometry_kwargs(geometry))
    loss = losses.device_loss(
        logits, jax.tree.leaves(new_vars.get("aux_logits", {})), labels,
        spec.loss, mixed, targets)
    return loss, (logits, new_vars.get("batch_stats", {}))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grads = lax.psum(grads, AXIS)
  if spec.frozen_statistics:
    batch_stats = optimizer.hold_frozen_statistics(
        state.params, state.batch_stats, batch_stats, spec.frozen_statistics)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  updates = jax.tree.map(lambda u: u * state.plateau.scale, updates)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema
  if spec.ema_decay:
    ema = update_ema(ema, {"params": params, "batch_stats": batch_stats},
                     spec.ema_decay)
  new_state = state.replace(
      step=state.step + 1,
      params=params,
      batch_stats=batch_stats,
      opt_state=opt_state,
      ema=ema)
  metrics = {
      "loss": lax.psum(loss, AXIS),
      "accuracy": lax.psum((logits.argmax(-1) == stored).sum(), AXIS) /
                  spec.global_batch,
      "learning_rate": schedule(state.step) * state.plateau.scale,
  }
  return new_state, metrics


def train_steps(state: TrainState, data: dict[str, jnp.ndarray],
                perm: jnp.ndarray, *, steps_per_call: int,
                spec: TrainSpec, **step_kwargs: Any
                ) -> tuple[TrainState, dict[str, jnp.ndarray]]:
  """``steps_per_call`` train steps in one program (``lax.scan``).

  One dispatch instead of k: the host's time per step shrinks k-fold. Each
  step is ``train_step`` itself, with its keys folded from ``state.step``,
  so the numbers are those of k separate calls. Streamed, ``data`` holds
  k batches stacked on a leading axis; in memory it is the split, which
  every step of the call reads with the same epoch permutation (calls never
  straddle an epoch end). Metrics come back stacked: shape ``(k,)`` each.

  The scan is unrolled: XLA:CPU compiles a rolled loop's body differently
  (last-bit differences from the second step on), the unrolled steps as
  the single step. The cost is compile time, which grows with k.
  """

  def body(state, batch):
    return train_step(state, batch, perm, spec=spec, **step_kwargs)

  if spec.streaming:
    return lax.scan(body, state, data, unroll=True)
  return lax.scan(lambda state, _: body(state, data), state, None,
                  length=steps_per_call, unroll=True)


@dataclasses.dataclass(frozen=True)
class EvalSpec:
  """Static facts of one evaluation over a padded split."""

  num_examples: int
  num_batches: int
  per_device_batch: int
  num_devices: int
  num_classes: int
  inputs: InputSpec
  loss: losses.LossSpec
  # Which of the views mirror the image (``evaluate.views.View.mirrored``).
  mirrored_views: tuple[bool, ...] = ()


def _outputs(variables: dict[str, Any], images: jnp.ndarray, *,
             model: flax.linen.Module, spec: EvalSpec,
             views: ViewsFn | None, geometry: jnp.ndarray | None = None
             ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Class log-probabilities and logits of unit-float images.

  With ``views`` (``evaluate.views``: ten crops, say) the probabilities are
  the mean over an image's views, as in the best FER2013 results, and the
  logits too are the views' mean. ``geometry`` (batch, 2, D): each image's
  descriptor and its mirror image's; a mirrored view reads the second.
  """
  if views is None:
    logits = model.apply(
        variables, spec.inputs(images),
        **geometry_kwargs(None if geometry is None else geometry[:, 0]))
    return jax.nn.log_softmax(logits), logits
  seen = views(images)
  flat = seen.reshape((-1,) + seen.shape[2:])
  flat_geometry = None
  if geometry is not None:
    if len(spec.mirrored_views) != seen.shape[0]:
      raise ValueError(f"{seen.shape[0]} test-time views, but "
                       f"{len(spec.mirrored_views)} say whether they mirror "
                       "the image: the geometry cannot follow them")
    flat_geometry = jnp.concatenate(
        [geometry[:, int(m)] for m in spec.mirrored_views])
  logits = model.apply(variables, spec.inputs(flat),
                       **geometry_kwargs(flat_geometry))
  probs = jax.nn.softmax(logits)
  mean = probs.reshape(seen.shape[:2] + probs.shape[1:]).mean(axis=0)
  mean_logits = logits.reshape(seen.shape[:2] + logits.shape[1:]).mean(0)
  return jnp.log(jnp.maximum(mean, jnp.finfo(jnp.float32).tiny)), mean_logits


def _device_rows(i: jnp.ndarray, spec: EvalSpec) -> jnp.ndarray:
  """This device's rows of padded global batch ``i``."""
  global_batch = spec.per_device_batch * spec.num_devices
  position = i * global_batch + lax.axis_index(AXIS) * spec.per_device_batch
  return position + jnp.arange(spec.per_device_batch)


def eval_split(variables: dict[str, Any], data: dict[str, jnp.ndarray], *,
               model: flax.linen.Module, spec: EvalSpec,
               views: ViewsFn | None = None) -> dict[str, jnp.ndarray]:
  """Sums over a whole split: confusion matrix, loss and example count.

  ``variables`` are the model's (``params``, ``batch_stats``): evaluation
  needs no optimizer. ``data`` is padded to ``num_batches`` global batches;
  padding is masked out, so every example counts exactly once. The loss is
  the run's own (``losses``).
  """

  def body(i, totals):
    idx = _device_rows(i, spec)
    mask = (idx < spec.num_examples).astype(jnp.float32)
    labels = data["labels"][idx]
    log_probs, scores = _outputs(
        variables, preprocess.to_unit_float(data["images"][idx]),
        model=model, spec=spec, views=views, geometry=_rows(data, idx))
    loss = losses.eval_losses(log_probs, scores, labels, spec.loss)
    confusion = jnp.einsum(
        "n,ni,nj->ij", mask, jax.nn.one_hot(labels, spec.num_classes),
        jax.nn.one_hot(log_probs.argmax(-1), spec.num_classes))
    return {"confusion": totals["confusion"] + confusion,
            "loss_sum": totals["loss_sum"] + (mask * loss).sum(),
            "count": totals["count"] + mask.sum()}

  zeros = {"confusion": jnp.zeros((spec.num_classes,) * 2, jnp.float32),
           "loss_sum": jnp.float32(0), "count": jnp.float32(0)}
  totals = lax.fori_loop(0, spec.num_batches, body, zeros)
  return lax.psum(totals, AXIS)


def split_log_probabilities(variables: dict[str, Any],
                            data: dict[str, jnp.ndarray], *,
                            model: flax.linen.Module, spec: EvalSpec,
                            views: ViewsFn | None = None) -> jnp.ndarray:
  """Every example's class log-probabilities, in the split's order.

  Those the loss of ``eval_split`` is computed from, so that the NLL and
  temperature of calibration see the same numbers (no probability that
  underflowed to 0 and was clipped on the host). Ensembles average their
  exponent. Each device fills its own rows and a ``psum`` assembles the
  whole (small) table on every device.
  """
  padded = spec.num_batches * spec.per_device_batch * spec.num_devices

  def body(i, table):
    idx = _device_rows(i, spec)
    log_probs = _outputs(
        variables, preprocess.to_unit_float(data["images"][idx]),
        model=model, spec=spec, views=views, geometry=_rows(data, idx))[0]
    return lax.dynamic_update_slice(table, log_probs, (idx[0], 0))

  table = lax.fori_loop(0, spec.num_batches, body,
                        jnp.zeros((padded, spec.num_classes), jnp.float32))
  return lax.psum(table, AXIS)[:spec.num_examples]

