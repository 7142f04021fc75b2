"""Building a run from its config: small functions that return values.

  data -> input statistics -> resolved config -> models, optimizer, loss
       -> compiled train step, evaluators

``ferjax train`` composes all of them (``training``); ``ferjax eval`` loads
only its eval splits and builds only the model and the evaluators. The
config is never written into: statistics are returned, and ``resolve``
returns a new config with them as explicit fields.
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import ml_collections
import numpy as np

from ferjax import config_checks
from ferjax.data import geometry_features
from ferjax.data import loading
from ferjax.data import mix as mix_lib
from ferjax.data import preprocess
from ferjax.models import fusion
from ferjax.run.model import build_model
from ferjax.train import input_pipeline
from ferjax import losses
from ferjax.train import optimizer as optimizer_lib
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.split_evaluator import Evaluator
from ferjax.train.parallel import AXIS, Parallel


@dataclasses.dataclass(frozen=True)
class Data:
  """A run's splits: evals in memory; train in memory or as a data source."""

  info: loading.DatasetInfo
  streaming: bool
  eval_splits: dict[str, loading.Split]
  train: loading.Split | None = None
  train_source: Any = None  # Streaming: the TFDS data source.
  # What each input.mixture entry added to train (data.mixture.mix).
  mixture: tuple[dict[str, Any], ...] = ()

  @property
  def num_train(self) -> int:
    return len(self.train if self.train is not None else self.train_source)

  def low_score_meshes(self) -> dict[str, Any]:
    """``{"low_score_meshes": {split: count}}`` of the faces FaceMesh scored
    low, where the splits carry geometry (for the manifest); else {}."""
    named = {"train": self.train, **self.eval_splits}
    counts = {name: geometry_features.low_score_meshes(split)
              for name, split in named.items()
              if split is not None and split.geometry is not None}
    return {"low_score_meshes": counts} if counts else {}

  def train_chunks(self):
    return loading.chunks(self.train if self.train is not None
                          else self.train_source)


def _streams(builder: Any, inp: ml_collections.ConfigDict) -> bool:
  """Whether the train split is streamed rather than held on the devices."""
  pipeline = inp.pipeline
  if pipeline == "auto":
    n = builder.info.splits[inp.train_split].num_examples
    size = n * int(np.prod(builder.info.features["image"].shape))
    pipeline = "stream" if size > inp.memory_limit_mb * 2**20 else "memory"
  if pipeline == "stream" and inp.protocol != "official":
    raise ValueError("config.input.pipeline='stream' reads official splits; "
                     f"protocol {inp.protocol!r} needs pipeline='memory'")
  return pipeline == "stream"


def load_data(config: ml_collections.ConfigDict, *,
              with_train: bool = True) -> Data:
  """The splits of ``config.evals`` and (``with_train``) the train split."""
  inp = config.input
  builder = loading.prepared_builder(
      inp.dataset, data_dir=inp.data_dir, manual_dir=inp.manual_dir,
      builder_config=inp.builder_config)
  streaming = with_train and _streams(builder, inp)
  if streaming and fusion.fuses_geometry(config.model):
    raise ValueError(
        "config.model.fusion.features has 'geometry', whose descriptors "
        "travel with the split in memory, but the train split would be "
        f"streamed (input.pipeline={inp.pipeline!r}, over "
        f"input.memory_limit_mb={inp.memory_limit_mb}); set "
        "input.pipeline='memory'")
  names = {ev.split for ev in config.evals.values()}
  if with_train and not streaming:
    names.add(inp.train_split)
  parts = loading.load_partitions(builder, inp, names)
  if fusion.fuses_geometry(config.model):
    parts = geometry_features.attach(builder, inp.train_split, parts)
  eval_splits = {name: parts[ev.split] for name, ev in config.evals.items()}
  info = loading.dataset_info(builder)
  if not with_train:
    return Data(info, False, eval_splits)
  mixture = inp.get("mixture") or ()
  if streaming:
    if mixture:
      raise ValueError(
          "config.input.mixture is mixed in memory, but the train split "
          f"is streamed (input.pipeline={inp.pipeline!r}); set "
          "input.pipeline='memory'")
    loading.check_split(builder, inp.train_split)
    return Data(info, True, eval_splits,
                train_source=builder.as_data_source(split=inp.train_split))
  if not mixture:
    return Data(info, False, eval_splits, train=parts[inp.train_split])
  from ferjax.data import mixture as mixture_lib
  train, records = mixture_lib.mix(parts[inp.train_split], info, mixture,
                                   config.seed)
  if info.soft_labels and train.targets is None:
    raise ValueError(
        f"dataset {info.name}/{info.builder_config} trains on soft targets "
        f"({info.soft_labels!r}), but a config.input.mixture entry has no "
        f"{loading.SOFT_TARGET_FEATURE!r}; mix datasets that have one, or "
        "train on the majority label")
  return Data(info, False, eval_splits, train=train, mixture=tuple(records))


@dataclasses.dataclass(frozen=True)
class Statistics:
  """What the train split says about itself."""

  mean: tuple[float, ...] | None
  std: tuple[float, ...] | None
  class_counts: np.ndarray | None


def input_statistics(config: ml_collections.ConfigDict,
                     data: Data) -> Statistics:
  """Channel mean/std and class counts of the train split, when needed.

  One pass over the split, only if the config leaves mean or std to be
  computed or asks for class weights from the class counts.
  """
  inp = config.input
  if (inp.mean is not None and inp.std is not None and
      config.loss.class_weights not in losses.CLASS_WEIGHTS):
    return Statistics(None, None, None)
  counts = np.zeros(len(data.info.class_names), np.int64)

  def images():
    for chunk in data.train_chunks():
      counts[:] += np.bincount(chunk.labels, minlength=len(counts))
      yield chunk.images

  mean, std = preprocess.channel_stats(images())
  return Statistics(tuple(mean), tuple(std), counts)


def resolve(config: ml_collections.ConfigDict,
            stats: Statistics) -> ml_collections.ConfigDict:
  """A copy of ``config`` with mean and std filled in from ``stats``."""
  resolved = ml_collections.ConfigDict(config.to_dict())
  if resolved.input.mean is None or resolved.input.std is None:
    resolved.input.mean, resolved.input.std = stats.mean, stats.std
  return resolved


def input_spec(config: ml_collections.ConfigDict) -> steps.InputSpec:
  inp = config.input
  return steps.InputSpec(image_size=tuple(inp.image_size),
                         channels=inp.channels, mean=tuple(inp.mean),
                         std=tuple(inp.std))


def models(config: ml_collections.ConfigDict,
           num_classes: int) -> tuple[Any, Any]:
  """(model to initialise, model for the steps with synchronised BN)."""
  return (build_model(config, num_classes),
          build_model(config, num_classes, bn_axis_name=AXIS))


def steps_per_epoch(config: ml_collections.ConfigDict, num_train: int,
                    num_devices: int) -> int:
  if config.batch_size % num_devices:
    raise ValueError(
        f"config.batch_size={config.batch_size} does not divide evenly over "
        f"{num_devices} devices; use a multiple of {num_devices}")
  spe = num_train // config.batch_size
  if not spe:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the "
                     f"{num_train} training examples")
  return spe


def steps_per_call(config: ml_collections.ConfigDict,
                   steps_per_epoch: int) -> int:
  """``train.steps_per_call`` as a count; 'auto' picks the largest k (at most
  ``MAX_STEPS_PER_CALL``) that the logging window and the save cadence
  divide. The epoch need not: its remainder runs in shorter calls
  (``input_pipeline.call_plan``), so a prime step count does not force k = 1.
  """
  k = config_checks.requested_steps_per_call(config)
  if k != "auto":
    config_checks.check_steps_per_epoch(k, steps_per_epoch)
    return k
  every = math.gcd(config.log_every_steps, config.checkpoint.every_steps)
  return max(d for d in range(1, config_checks.MAX_STEPS_PER_CALL + 1)
             if every % d == 0)


def class_weights(setting: Any, class_names: tuple[str, ...],
                  stats: Statistics, num_train: int, *,
                  beta: float = 0.9999) -> tuple[float, ...] | None:
  """``loss.class_weights`` as one weight per class.

  'balanced' is inverse frequency, ``N / (K n_c)``; 'effective_number'
  the class-balanced weights of Cui et al. (``losses``) with ``beta``.
  """
  if setting is None:
    return None
  k = len(class_names)
  if setting == "balanced":
    weights = num_train / (k * np.maximum(stats.class_counts, 1))
    return tuple(float(w) for w in weights)
  if setting == "effective_number":
    return losses.effective_number_weights(stats.class_counts, beta)
  if len(setting) != k:
    raise ValueError(f"config.loss.class_weights: expected {k} weights "
                     f"({', '.join(class_names)}), got {len(setting)}")
  return tuple(float(w) for w in setting)


def eval_loss(config: ml_collections.ConfigDict,
              num_classes: int) -> losses.LossSpec:
  """The loss definition evaluations use (weights play no part there)."""
  return losses.LossSpec.from_config(config.loss, num_classes=num_classes,
                                     class_weights=None)


def evaluators(config: ml_collections.ConfigDict,
               eval_splits: dict[str, loading.Split], *, parallel: Parallel,
               model: Any, class_names: tuple[str, ...]
               ) -> dict[str, Evaluator]:
  inputs = input_spec(config)
  loss = eval_loss(config, len(class_names))
  return {name: Evaluator(name, eval_splits[name], eval_config=ev,
                          batch_size=ev.get("batch_size", config.batch_size),
                          parallel=parallel, model=model, inputs=inputs,
                          class_names=class_names, loss=loss)
          for name, ev in config.evals.items()}


def _flips_fn(config: ml_collections.ConfigDict) -> steps.FlipsFn | None:
  """Which images the augmentation mirrors, where geometry must follow."""
  cfg = config.input.get("augment")
  if not (cfg and fusion.fuses_geometry(config.model)):
    return None
  from ferjax.data import augment  # pylint: disable=g-import-not-at-top
  return functools.partial(augment.flips, cfg=cfg)


def _augment_fn(config: ml_collections.ConfigDict) -> steps.AugmentFn | None:
  cfg = config.input.get("augment")
  if not cfg:
    return None
  from ferjax.data import augment  # Only runs that augment pay the import.
  return functools.partial(augment.augment, cfg=cfg)


@dataclasses.dataclass(frozen=True)
class Training:
  """Everything ``train_and_evaluate`` runs, built by ``training``."""

  config: ml_collections.ConfigDict  # Resolved: mean and std filled in.
  data: Data
  parallel: Parallel
  class_names: tuple[str, ...]
  inputs: steps.InputSpec
  init_model: Any
  model: Any
  tx: Any
  steps_per_epoch: int
  total_steps: int
  spec: steps.TrainSpec  # What train_step was built with.
  # The most steps per train_step call (``input_pipeline.call_plan``).
  steps_per_call: int
  # train_step(state, data, order, steps): takes and returns that many steps
  # (stacked when steps_per_call > 1).
  train_step: Any
  evaluators: dict[str, Evaluator]

  def batches(self) -> (input_pipeline.InMemoryBatches |
                        input_pipeline.StreamingBatches):
    """The training input, in memory or streamed."""
    targets = self.spec.soft_labels is not None
    if self.data.streaming:
      return input_pipeline.StreamingBatches(
          self.data.train_source, seed=self.config.seed,
          steps_per_epoch=self.steps_per_epoch,
          batch_size=self.config.batch_size, parallel=self.parallel,
          steps_per_call=self.steps_per_call, targets=targets)
    return input_pipeline.InMemoryBatches(
        self.data.train, seed=self.config.seed,
        steps_per_epoch=self.steps_per_epoch, parallel=self.parallel,
        steps_per_call=self.steps_per_call, targets=targets)

  def init_state(self) -> state_lib.TrainState:
    return state_lib.create(model=self.init_model, tx=self.tx,
                            input_shape=(*self.config.input.image_size,
                                         self.config.input.channels),
                            seed=self.config.seed,
                            ema=bool(self.config.optimizer.ema_decay))


def _train_step(parallel: Parallel, k: int, *, streaming: bool,
                **step_kwargs: Any) -> Any:
  """``train_step(state, data, order, steps)``: one program per call length,
  compiled on first use (k and the few shorter lengths of ``call_plan``)."""
  programs: dict[int, Any] = {}

  def one_of_stacked(state, data, order, **kwargs):
    # A scan of length 1 is not bit-identical to the single step on XLA:CPU;
    # a call of one step is the single step, on a stacked batch of one.
    if streaming:
      data = jax.tree.map(lambda x: x[0], data)
    return steps.train_step(state, data, order, **kwargs)

  def call(state, data, order, n):
    if n not in programs:
      fn = (steps.train_step if k == 1 else one_of_stacked if n == 1 else
            functools.partial(steps.train_steps, steps_per_call=n))
      programs[n] = parallel.map(
          functools.partial(fn, **step_kwargs), donate_argnums=(0,),
          sharded_argnums=(1,) if streaming else (), stacked=k > 1)
    return programs[n](state, data, order)

  return call


def training(config: ml_collections.ConfigDict, parallel: Parallel,
             data: Data | None = None) -> Training:
  """Data, statistics, models, optimizer, loss, step and evaluators."""
  data = data or load_data(config)
  stats = input_statistics(config, data)
  config = resolve(config, stats)
  class_names = data.info.class_names
  spe = steps_per_epoch(config, data.num_train, parallel.num_devices)
  total = spe * config.num_epochs
  init_model, model = models(config, len(class_names))
  schedule = optimizer_lib.learning_rate_schedule(
      config.optimizer, steps_per_epoch=spe, total_steps=total)
  tx = optimizer_lib.make_optimizer(config.optimizer, schedule)
  loss = losses.LossSpec.from_config(
      config.loss, num_classes=len(class_names),
      class_weights=class_weights(config.loss.class_weights, class_names,
                                  stats, data.num_train,
                                  beta=config.loss.class_balance_beta))
  opt = config.optimizer
  spec = steps.TrainSpec(
      global_batch=config.batch_size,
      per_device_batch=config.batch_size // parallel.num_devices,
      steps_per_epoch=spe, inputs=input_spec(config), loss=loss,
      streaming=data.streaming,
      frozen_statistics=(tuple(opt.frozen) if opt.freeze_batch_stats
                         else ()),
      mix=mix_lib.MixSpec.from_config(config.input.mix),
      ema_decay=float(opt.ema_decay),
      soft_labels=data.info.soft_labels)
  k = steps_per_call(config, spe)
  train_step = _train_step(
      parallel, k, streaming=data.streaming, model=model, tx=tx,
      schedule=schedule, spec=spec, augment=_augment_fn(config),
      flips=_flips_fn(config))
  return Training(
      config=config, data=data, parallel=parallel, class_names=class_names,
      inputs=spec.inputs, init_model=init_model, model=model, tx=tx,
      steps_per_epoch=spe, total_steps=total, spec=spec,
      steps_per_call=k, train_step=train_step,
      evaluators=evaluators(config, data.eval_splits, parallel=parallel,
                            model=model, class_names=class_names))
