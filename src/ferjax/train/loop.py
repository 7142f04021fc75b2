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
from ferjax.train import init_from as init_from_lib
from ferjax.train import input_pipeline
from ferjax.train import manifest as manifest_lib
from ferjax.train import optimizer as optimizer_lib
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.evaluator import Evaluator
from ferjax.train.metric_writer import MetricWriter
from ferjax.train.parallel import AXIS, Parallel
from ferjax.train.progress import Progress

log = logging.getLogger("ferjax")


class RunSetup:
  """Data, model, optimizer and compiled steps for one resolved config."""

  def __init__(self, config: ml_collections.ConfigDict, parallel: Parallel):
    inp = config.input
    builder = loading.prepared_builder(
        inp.dataset, data_dir=inp.data_dir, manual_dir=inp.manual_dir,
        builder_config=inp.builder_config)
    self.info = loading.dataset_info(builder)
    self.class_names = self.info.class_names
    self.streaming = _streams(builder, inp)
    names = {ev.split for ev in config.evals.values()}
    if not self.streaming:
      names.add(inp.train_split)
    parts = loading.load_partitions(builder, inp, names)
    self.eval_splits = {name: parts[ev.split]
                        for name, ev in config.evals.items()}
    if self.streaming:
      self._train_source = builder.as_data_source(split=inp.train_split)
      self.num_train = len(self._train_source)
      train_chunks = loading.chunks(self._train_source)
    else:
      self.train = parts[inp.train_split]
      self.num_train = len(self.train)
      train_chunks = loading.chunks(self.train)
    self.class_counts = None
    if (inp.mean is None or inp.std is None or
        config.loss.class_weights == "balanced"):
      counts = np.zeros(len(self.class_names), np.int64)

      def images():
        for chunk in train_chunks:
          counts[:] += np.bincount(chunk.labels, minlength=len(counts))
          yield chunk.images

      mean, std = preprocess.channel_stats(images())
      self.class_counts = counts
      if inp.mean is None or inp.std is None:
        inp.mean, inp.std = tuple(mean), tuple(std)
    self.config = config
    self.parallel = parallel
    self.inputs = steps.InputSpec(
        image_size=tuple(inp.image_size), channels=inp.channels,
        mean=tuple(inp.mean), std=tuple(inp.std))
    self.input_shape = (*inp.image_size, inp.channels)

    n = parallel.num_devices
    if config.batch_size % n:
      raise ValueError(
          f"config.batch_size={config.batch_size} does not divide evenly over "
          f"{n} devices; use a multiple of {n}")
    self.steps_per_epoch = self.num_train // config.batch_size
    if not self.steps_per_epoch:
      raise ValueError(
          f"config.batch_size={config.batch_size} exceeds the "
          f"{self.num_train} training examples")
    self.total_steps = self.steps_per_epoch * config.num_epochs

    model_kwargs = {"dtype": jnp.dtype(config.model.dtype),
                    "fusion": config.model.get("fusion")}
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
        aux_weight=config.loss.aux_weight, class_weights=class_weights,
        streaming=self.streaming,
        frozen_statistics=(tuple(config.optimizer.frozen or ())
                           if config.optimizer.get("freeze_batch_stats", True)
                           else ()))
    self.train_step = parallel.map(functools.partial(
        steps.train_step, model=self.model, tx=self.tx,
        schedule=self.schedule, spec=spec, augment=self._augment_fn()),
        donate_argnums=(0,), sharded_argnums=(1,) if self.streaming else ())
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
      weights = self.num_train / (k * np.maximum(self.class_counts, 1))
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

  def batches(self) -> (input_pipeline.InMemoryBatches |
                        input_pipeline.StreamingBatches):
    """The training input, in memory or streamed."""
    if self.streaming:
      return input_pipeline.StreamingBatches(
          self._train_source, seed=self.config.seed,
          steps_per_epoch=self.steps_per_epoch,
          batch_size=self.config.batch_size, parallel=self.parallel)
    return input_pipeline.InMemoryBatches(
        self.train, seed=self.config.seed,
        steps_per_epoch=self.steps_per_epoch, parallel=self.parallel)

  def init_state(self) -> state_lib.TrainState:
    return state_lib.create(model=self.init_model, tx=self.tx,
                            input_shape=self.input_shape,
                            seed=self.config.seed)


def _streams(builder: Any, inp: ml_collections.ConfigDict) -> bool:
  """Whether the train split is streamed rather than held on the devices."""
  pipeline = inp.get("pipeline", "memory")
  if pipeline == "auto":
    n = builder.info.splits[inp.train_split].num_examples
    size = n * int(np.prod(builder.info.features["image"].shape))
    pipeline = "stream" if size > inp.memory_limit_mb * 2**20 else "memory"
  if pipeline == "stream" and inp.get("protocol", "official") != "official":
    raise ValueError("config.input.pipeline='stream' reads official splits; "
                     f"protocol {inp.protocol!r} needs pipeline='memory'")
  return pipeline == "stream"


def _check_resume_config(path: pathlib.Path,
                         config: ml_collections.ConfigDict) -> None:
  """Refuses to resume a run directory with a different experiment in it."""
  if not path.exists():
    return
  saved = json.loads(path.read_text())
  differing = [f for f in config_lib.differing_fields(saved, config.to_dict())
               if not f.startswith(config_lib.WHERE_FIELDS)]
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
  init_record = None
  if start_step:
    # A resumed run continues its own state, never the source's again.
    host_state = ckpt.restore(start_step, host_state)
    log.info("resumed from step %d", start_step)
  elif config.get("init_from") and config.init_from.get("workdir"):
    host_state, init_record = init_from_lib.load(
        host_state, init_from=config.init_from,
        class_names=setup.class_names, tx=setup.tx)
    log.info("initialised from %s step %d: %d variables loaded, %d skipped",
             init_record["workdir"], init_record["step"],
             init_record["loaded"], len(init_record["skipped"]))
  state = parallel.replicate(host_state)

  writer = MetricWriter(workdir_path, enabled=is_chief)
  writer.truncate_after(start_step)
  manifest_path = workdir_path / "manifest.json"
  manifest = manifest_lib.start(
      manifest_path, argv=argv if argv is not None else sys.argv,
      start_step=start_step, seed=config.seed,
      dataset={**setup.info.__dict__,
               "pipeline": "stream" if setup.streaming else "memory",
               "split_sizes_used": {
                   "train": setup.num_train,
                   **{n: len(s) for n, s in setup.eval_splits.items()}}},
      init_from=init_record) if is_chief else None

  spe = setup.steps_per_epoch
  progress = Progress(setup.total_steps, start_step, config.batch_size,
                      enabled=is_chief)
  results: dict[str, dict[str, Any]] = {}
  pending: list[dict[str, jax.Array]] = []
  step = start_step
  t_log = time.monotonic()
  step_log = step
  for data, order in setup.batches().iterate(start_step, setup.total_steps):
    epoch = step // spe
    state, metrics = setup.train_step(state, data, order)
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
    # Every evaluation, and so the last step, falls on an epoch end.
    every = config.checkpoint.every_steps
    if epoch_end or (every and step % every == 0):
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
