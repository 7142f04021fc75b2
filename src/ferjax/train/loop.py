"""The imperative shell: data on devices, the step loop, evals, checkpoints.

Everything numeric happens in the pure functions of ``steps``; this module
decides when to call them and where the results go.
"""

import functools
import json
import logging
import pathlib
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ferjax import atomic
from ferjax import config as config_lib
from ferjax.data import loading
from ferjax.data import preprocess
from ferjax.models import create_model
from ferjax.train import checkpoint as checkpoint_lib
from ferjax.train import manifest as manifest_lib
from ferjax.train import optimizer as optimizer_lib
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.evaluator import Evaluator
from ferjax.train.metric_writer import MetricWriter
from ferjax.train.parallel import AXIS, Parallel
from ferjax.train.progress import Progress

log = logging.getLogger("ferjax")

# Fields that may change when a run is resumed: where it runs, not what it
# computes.
_RESUMABLE_CHANGES = ("parallel.", "input.data_dir", "input.manual_dir")


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The epoch's example order: a function of (seed, epoch) alone."""
  return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


class RunSetup:
  """Data, model, optimizer and compiled steps for one resolved config."""

  def __init__(self, config: ml_collections.ConfigDict, parallel: Parallel):
    inp = config.input
    builder = loading.prepared_builder(
        inp.dataset, data_dir=inp.data_dir, manual_dir=inp.manual_dir,
        builder_config=inp.builder_config)
    self.info = loading.dataset_info(builder)
    parts = loading.load_partitions(
        builder, inp, {inp.train_split} | {ev.split
                                           for ev in config.evals.values()})
    self.train = parts[inp.train_split]
    self.eval_splits = {name: parts[ev.split]
                        for name, ev in config.evals.items()}
    if config.input.mean is None or config.input.std is None:
      mean, std = preprocess.channel_stats(self.train.images)
      config.input.mean, config.input.std = tuple(mean), tuple(std)
    self.config = config
    self.parallel = parallel
    self.class_names = self.info.class_names
    self.inputs = steps.InputSpec(
        image_size=tuple(inp.image_size), channels=inp.channels,
        mean=tuple(inp.mean), std=tuple(inp.std))
    self.input_shape = (*inp.image_size, inp.channels)

    n = parallel.num_devices
    if config.batch_size % n:
      raise ValueError(
          f"config.batch_size={config.batch_size} does not divide evenly over "
          f"{n} devices; use a multiple of {n}")
    self.steps_per_epoch = len(self.train) // config.batch_size
    if not self.steps_per_epoch:
      raise ValueError(
          f"config.batch_size={config.batch_size} exceeds the "
          f"{len(self.train)} training examples")
    self.total_steps = self.steps_per_epoch * config.num_epochs

    model_kwargs = {"dtype": jnp.dtype(config.model.dtype)}
    model_kwargs.update(dict(config.model.get("kwargs") or {}))
    num_classes = len(self.class_names)
    self.init_model = create_model(config.model.name, num_classes=num_classes,
                                   **model_kwargs)
    self.model = create_model(config.model.name, num_classes=num_classes,
                              bn_axis_name=AXIS, **model_kwargs)
    self.schedule = optimizer_lib.learning_rate_schedule(
        config.optimizer, steps_per_epoch=self.steps_per_epoch,
        total_steps=self.total_steps)
    self.tx = optimizer_lib.make_optimizer(config.optimizer, self.schedule)

    class_weights = self._class_weights(config.loss.class_weights)
    spec = steps.TrainSpec(
        global_batch=config.batch_size,
        per_device_batch=config.batch_size // n,
        steps_per_epoch=self.steps_per_epoch, num_classes=num_classes,
        inputs=self.inputs, label_smoothing=config.loss.label_smoothing,
        aux_weight=config.loss.aux_weight, class_weights=class_weights)
    self.train_step = parallel.map(functools.partial(
        steps.train_step, model=self.model, tx=self.tx,
        schedule=self.schedule, spec=spec, augment=self._augment_fn()),
        donate_argnums=(0,))
    self.evaluators = {
        name: Evaluator(name, self.eval_splits[name], eval_config=ev,
                        batch_size=ev.get("batch_size", config.batch_size),
                        parallel=parallel, model=self.model,
                        inputs=self.inputs, class_names=self.class_names)
        for name, ev in config.evals.items()}

  def _class_weights(self, setting: Any) -> tuple[float, ...] | None:
    if setting is None:
      return None
    k = len(self.class_names)
    if setting == "balanced":
      counts = np.bincount(self.train.labels, minlength=k).astype(np.float64)
      weights = len(self.train) / (k * np.maximum(counts, 1))
      return tuple(float(w) for w in weights)
    if len(setting) != k:
      raise ValueError(f"config.loss.class_weights: expected {k} weights "
                       f"({', '.join(self.class_names)}), got {len(setting)}")
    return tuple(float(w) for w in setting)

  def _augment_fn(self) -> steps.AugmentFn | None:
    cfg = self.config.input.get("augment")
    if not cfg:
      return None
    from ferjax.data import augment
    return functools.partial(augment.augment, cfg=cfg)

  def init_state(self) -> state_lib.TrainState:
    return state_lib.create(model=self.init_model, tx=self.tx,
                            input_shape=self.input_shape,
                            seed=self.config.seed)


def _check_resume_config(path: pathlib.Path,
                         config: ml_collections.ConfigDict) -> None:
  """Refuses to resume a run directory with a different experiment in it."""
  if not path.exists():
    return
  saved = json.loads(path.read_text())
  differing = [f for f in config_lib.differing_fields(saved, config)
               if not f.startswith(_RESUMABLE_CHANGES)]
  if differing:
    raise ValueError(
        f"{path.parent} already holds a run with a different config "
        f"(fields: {', '.join(differing)}); use a new --workdir")


def _plateau_value(config: ml_collections.ConfigDict,
                   results: dict[str, dict[str, Any]]) -> float | None:
  if config.optimizer.schedule != "plateau":
    return None
  name, metric = config.optimizer.plateau.metric.split("/")
  return float(results[name][metric])


def _scalar_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
  return {f"{name}/{k}": float(v) for name, r in results.items()
          for k, v in r.items() if isinstance(v, (int, float))}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       *, argv: list[str] | None = None) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint).

  Returns the final evaluation results by eval name.
  """
  config_lib.validate(config)
  config = ml_collections.ConfigDict(config)
  workdir_path = pathlib.Path(workdir)
  parallel = Parallel.from_config(config.parallel)
  setup = RunSetup(config, parallel)
  config = setup.config
  is_chief = jax.process_index() == 0

  config_path = workdir_path / "config.json"
  _check_resume_config(config_path, config)
  if is_chief:
    atomic.write_text(config_path, config_lib.to_json(config) + "\n")

  ckpt = checkpoint_lib.Checkpoints(
      workdir_path / "checkpoints", keep=config.checkpoint.keep,
      best_metric=config.checkpoint.best_metric,
      best_mode=config.checkpoint.best_mode)
  host_state = setup.init_state()
  start_step = ckpt.latest_step() or 0
  if start_step:
    host_state = ckpt.restore(start_step, host_state)
    log.info("resumed from step %d", start_step)
  state = parallel.replicate(host_state)

  writer = MetricWriter(workdir_path, enabled=is_chief)
  writer.truncate_after(start_step)
  manifest_path = workdir_path / "manifest.json"
  manifest = manifest_lib.start(
      manifest_path, argv=argv if argv is not None else sys.argv,
      start_step=start_step, seed=config.seed,
      dataset={**setup.info.__dict__,
               "split_sizes_used": {
                   "train": len(setup.train),
                   **{n: len(s) for n, s in setup.eval_splits.items()}}}
  ) if is_chief else None

  train_data = parallel.replicate(
      {"images": jnp.asarray(setup.train.images),
       "labels": jnp.asarray(setup.train.labels)})
  spe = setup.steps_per_epoch
  progress = Progress(setup.total_steps, start_step, config.batch_size)
  results: dict[str, dict[str, Any]] = {}
  pending: list[dict[str, jax.Array]] = []
  perm, perm_epoch = None, None
  step = start_step
  t_log = time.monotonic()
  step_log = step
  while step < setup.total_steps:
    epoch = step // spe
    if perm_epoch != epoch:
      perm = parallel.replicate(
          epoch_permutation(config.seed, epoch, len(setup.train)))
      perm_epoch = epoch
    state, metrics = setup.train_step(state, train_data, perm)
    pending.append(metrics)
    step += 1
    epoch_end = step % spe == 0
    if step % config.log_every_steps == 0 or step == setup.total_steps:
      host = jax.device_get(parallel.unreplicate(pending))
      elapsed = time.monotonic() - t_log
      summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
      summary["images_per_second"] = (
          (step - step_log) * config.batch_size / elapsed if elapsed else 0.0)
      writer.write(step, "train", summary)
      pending, t_log, step_log = [], time.monotonic(), step
    progress.update(step, f"epoch {epoch + 1}/{config.num_epochs}")
    evaluate_now = epoch_end and ((epoch + 1) % config.eval_every_epochs == 0
                                  or step == setup.total_steps)
    if evaluate_now:
      results = {name: ev(state) for name, ev in setup.evaluators.items()}
      for name, r in results.items():
        writer.write(step, name, r)
      value = _plateau_value(config, results)
      if value is not None:
        plateau = parallel.unreplicate(state.plateau)
        p = config.optimizer.plateau
        new = optimizer_lib.plateau_update(
            jax.device_get(plateau), value, mode=p.mode, factor=p.factor,
            patience=p.patience, min_scale=p.min_scale)
        state = state.replace(plateau=parallel.replicate(new))
      log.info("step %d: %s", step, ", ".join(
          f"{n}/accuracy={r['accuracy']:.4f}" for n, r in results.items()))
    every = config.checkpoint.every_steps
    if evaluate_now or epoch_end or (every and step % every == 0) or (
        step == setup.total_steps):
      ckpt.save(step, parallel.unreplicate(state),
                _scalar_metrics(results) if evaluate_now else None)
  progress.close()
  ckpt.wait()
  if not results:
    results = {name: ev(state) for name, ev in setup.evaluators.items()}
  ckpt.close()
  writer.close()
  if is_chief:
    manifest_lib.finish(manifest_path, manifest, end_step=step)
  return results
