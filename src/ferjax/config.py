"""Experiment configs: loading ``file.py[:args]``, overrides and validation.

Configs are code (``experiments/<dataset>_<model>.py`` with ``get_config()``),
as in big_vision. Everything here runs before JAX starts, so a typo in a field
name or a bad value fails in milliseconds instead of after compilation.
"""

import ast
import importlib.util
import json
import math
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from ferjax.data import registry as data_registry
from ferjax.features.lbp import LBP_METHODS
from ferjax.features.lbp import num_codes
from ferjax.models import HANDCRAFTED_MODELS
from ferjax.models import MODEL_NAMES
from ferjax.train.losses import LOSSES

BACKENDS = ("shard_map", "pmap")
SCHEDULES = ("constant", "piecewise", "cosine", "plateau")
TTA_MODES = ("none", "ten_crop")


class ConfigError(ValueError):
  """A config file, argument or field that is not what ferjax expects."""


# Fields saying where and how a run executes, not what it computes: they may
# differ when a run is resumed, swept or reproduced on another machine (the
# streamed and in-memory pipelines give identical numbers).
WHERE_FIELDS = ("parallel.", "slurm.", "input.data_dir", "input.manual_dir",
                "input.pipeline", "input.memory_limit_mb")

# Every field added after the first release, with the value that reproduces
# the behaviour of a ferjax that did not have it. A run config written by an
# earlier version is completed with these (and the manifest says so), so old
# runs resume, evaluate and predict. A new field needs an entry here.
LEGACY_VALUES: dict[str, Any] = {
    "input.protocol": "official",
    "input.pool_splits": None,
    "input.split_seed": 0,
    "input.folds": 10,
    "input.fold": 0,
    "input.pipeline": "memory",  # Streaming came later.
    "input.memory_limit_mb": 2048,
    "model.kwargs": {},
    "loss.name": "cross_entropy",
    "loss.focal_gamma": 2.0,
    "loss.ohem_fraction": 1.0,
    "optimizer.frozen": (),
    # Before it existed, frozen BatchNorm layers' statistics kept adapting.
    "optimizer.freeze_batch_stats": False,
    "optimizer.lr_multipliers": (),
    "init_from.workdir": None,
    "init_from.checkpoint": "best",
    "parallel.num_devices": None,
    "slurm.partition": None,
    "slurm.time_minutes": 60,
    "slurm.nodes": 1,
    "slurm.tasks_per_node": 1,
    "slurm.cpus_per_task": None,
    "slurm.gpus_per_node": 0,
    "slurm.mem_gb": None,
    "slurm.sbatch": (),
    # No hand-crafted features: the CNN alone, as before fusion existed.
    "model.fusion.features": (),
    "model.fusion.mode": "late",
    "model.fusion.width": 64,
    "model.fusion.lbp.points": 8,
    "model.fusion.lbp.radius": 1.0,
    "model.fusion.lbp.method": "uniform",
    "model.fusion.lbp.grid": (6, 6),
    "model.fusion.gabor.ksize": 9,
    "model.fusion.gabor.orientations": 4,
    "model.fusion.gabor.sigmas": (2.0, 3.5),
    "model.fusion.gabor.wavelengths": (4.0, 8.0),
    "model.fusion.gabor.gamma": 0.5,
    "model.fusion.gabor.grid": (6, 6),
    # The late head saw the raw histogram fractions and Gabor cell means.
    "model.fusion.standardize": False,
}


def split_override_args(extra: Sequence[str]) -> list[str]:
  """Command-line ``--config.a.b=v`` / ``--config.a.b v`` -> ``a.b=v``."""
  overrides, i = [], 0
  while i < len(extra):
    arg = extra[i]
    if not arg.startswith("--config."):
      raise ConfigError(
          f"unrecognised argument {arg!r}; config fields are set with "
          "--config.FIELD=VALUE")
    body = arg[len("--config."):]
    if "=" not in body:
      if i + 1 >= len(extra):
        raise ConfigError(f"{arg}: missing value")
      body = f"{body}={extra[i + 1]}"
      i += 1
    overrides.append(body)
    i += 1
  return overrides


def parse_arg(arg: str | None, **spec: Any) -> ml_collections.ConfigDict:
  """Parses big_vision-style config arguments ``"key=value,flag,..."``.

  ``spec`` gives every accepted key with its default; values are converted to
  the default's type, and a bare ``key`` means ``True``. Unknown keys are an
  error so that ``:dept=16`` does not silently train the default depth.
  """
  result = ml_collections.ConfigDict(spec)
  for item in filter(None, (arg or "").split(",")):
    key, sep, raw = item.partition("=")
    key = key.strip()
    if key not in spec:
      raise ConfigError(
          f"config argument {key!r} is unknown; expected one of "
          f"{', '.join(sorted(spec)) or '(none)'}")
    result[key] = _convert(raw.strip() if sep else "True", spec[key],
                           f"config argument {key!r}")
  return result


def base_config() -> ml_collections.ConfigDict:
  """Every field the trainer reads, at neutral defaults.

  Experiment files start from this and set what their recipe changes, so
  that every field exists (and can be overridden) in every experiment.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 10
  c.batch_size = 128
  c.log_every_steps = 50
  c.eval_every_epochs = 1

  c.input = ml_collections.ConfigDict()
  c.input.dataset = "synthetic_fer"
  c.input.builder_config = None
  c.input.data_dir = None  # None: TFDS's default, ~/tensorflow_datasets.
  c.input.manual_dir = None
  c.input.protocol = "official"  # official | review_70_30 | kfold
  c.input.pool_splits = None  # Pooled by review_70_30 / kfold; None: all.
  c.input.split_seed = 0
  c.input.folds = 10
  c.input.fold = 0
  c.input.train_split = "train"
  c.input.image_size = (48, 48)
  c.input.channels = 1
  c.input.mean = None  # None: computed from the train split.
  c.input.std = None
  c.input.augment = ml_collections.ConfigDict()  # See data.augment.augment.
  c.input.pipeline = "auto"  # memory | stream | auto (by memory_limit_mb)
  c.input.memory_limit_mb = 2048

  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet5"
  c.model.dtype = "float32"
  c.model.kwargs = ml_collections.ConfigDict()
  # Hand-crafted features fused into the model (models/fusion.py); () off.
  # lbp_linear, the CNN-free baseline, takes its descriptor from .lbp.
  c.model.fusion = ml_collections.ConfigDict(dict(
      features=(),  # any of 'lbp', 'gabor'
      mode="late",  # early: extra input channels | late: beside the logits
      width=64,  # late: units of the fusion head's hidden Dense
      standardize=True,  # late: each descriptor element to zero mean, unit var
      lbp=dict(points=8, radius=1.0, method="uniform", grid=(6, 6)),
      gabor=dict(ksize=9, sigmas=(2.0, 3.5), wavelengths=(4.0, 8.0),
                 orientations=4, gamma=0.5, grid=(6, 6))))

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "cross_entropy"  # cross_entropy | focal (train.losses)
  c.loss.focal_gamma = 2.0  # focal: (1 - p)^gamma down-weights easy examples.
  # Online hard example mining: only this fraction of each global batch, the
  # examples with the highest loss, contributes; 1.0 keeps every example.
  c.loss.ohem_fraction = 1.0
  c.loss.label_smoothing = 0.0
  c.loss.class_weights = None  # None | 'balanced' | one weight per class.
  c.loss.aux_weight = 0.3  # GoogLeNet's auxiliary heads.

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.weight_decay = 0.0  # Coupled L2, as torch.optim.SGD.
  c.optimizer.grad_clip_norm = None
  c.optimizer.schedule = "constant"  # constant | piecewise | cosine | plateau
  c.optimizer.warmup_epochs = 0.0
  c.optimizer.boundaries_epochs = ()
  c.optimizer.decay_factor = 0.1
  c.optimizer.plateau = ml_collections.ConfigDict(dict(
      metric="test/accuracy", mode="max", factor=0.75, patience=5,
      min_scale=1e-3))
  # Fine-tuning: regexes matching whole '/'-joined parameter paths.
  c.optimizer.frozen = ()  # No update and no weight decay.
  # BatchNorm layers whose parameters are all frozen keep their running
  # statistics too; False lets them adapt to the new data.
  c.optimizer.freeze_batch_stats = True
  # ((pattern, multiplier), ...): first match wins, unmatched 1.0. Pairs, not
  # a dict, because ConfigDict keys cannot hold the '.' of a regex.
  c.optimizer.lr_multipliers = ()

  # Start from another run's variables (fresh optimizer; the classifier head
  # is re-initialised when the class names differ). None: from scratch.
  c.init_from = ml_collections.ConfigDict(dict(workdir=None,
                                               checkpoint="best"))

  c.evals = ml_collections.ConfigDict()
  c.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 0  # 0: at the end of each epoch only.
  c.checkpoint.keep = 2
  c.checkpoint.best_metric = "test/accuracy"
  c.checkpoint.best_mode = "max"

  c.parallel = ml_collections.ConfigDict()
  c.parallel.backend = "shard_map"  # shard_map | pmap
  c.parallel.cpu_devices = None  # CPU only: split the host into N devices.
  c.parallel.num_devices = None  # None: all devices.

  # Each trial's job under `ferjax sweep --launcher slurm` (sbatch options;
  # checked by ferjax.experiment.slurm.resources).
  c.slurm = ml_collections.ConfigDict()
  c.slurm.partition = None  # None: the cluster's default partition.
  c.slurm.time_minutes = 60  # A trial that reaches it is requeued, resumed.
  c.slurm.nodes = 1
  c.slurm.tasks_per_node = 1  # > 1: a multi-process (--distributed) trial.
  c.slurm.cpus_per_task = None  # None: parallel.cpu_devices, or 1.
  c.slurm.gpus_per_node = 0
  c.slurm.mem_gb = None  # None: the partition's default.
  c.slurm.sbatch = ()  # More options, e.g. ("--account=lab", "--qos=high").
  return c


def load_experiment(spec: str) -> tuple[Any, str | None]:
  """The module of ``path/to/experiment.py[:arg]`` and its ``arg``."""
  path_str, _, arg = spec.partition(":")
  path = pathlib.Path(path_str)
  if not path.is_file():
    raise ConfigError(f"config file {path_str!r} does not exist")
  module_spec = importlib.util.spec_from_file_location(
      f"ferjax_experiment_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module, arg or None


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path/to/config.py[:arg]`` by calling its ``get_config(arg)``."""
  module, arg = load_experiment(spec)
  path_str = spec.partition(":")[0]
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path_str!r} defines no get_config()")
  config = module.get_config(arg) if arg else _call_without_arg(module)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(
        f"{path_str}: get_config() must return an ml_collections.ConfigDict")
  return config


def _call_without_arg(module: Any) -> ml_collections.ConfigDict:
  try:
    return module.get_config()
  except TypeError:
    return module.get_config(None)


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Iterable[str]) -> ml_collections.ConfigDict:
  """Applies ``FIELD=VALUE`` overrides (the part after ``--config.``).

  Each value is parsed as the field's current type. Fields must exist: a new
  field is almost always a typo.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  for override in overrides:
    field, sep, raw = override.partition("=")
    if not sep:
      raise ConfigError(f"--config.{override}: expected --config.FIELD=VALUE")
    *parents, leaf = field.split(".")
    node = config
    for i, part in enumerate(parents):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ConfigError(
            f"--config.{field}: unknown field "
            f"{'.'.join(parents[:i + 1])!r}")
      node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      known = ", ".join(sorted(node.keys())) if isinstance(
          node, ml_collections.ConfigDict) else "(not a section)"
      raise ConfigError(
          f"--config.{field}: unknown field; known fields here: {known}")
    value = _convert(raw, node[leaf], f"--config.{field}")
    if isinstance(value, Mapping):
      node[leaf] = ml_collections.ConfigDict(value)
    else:
      node[leaf] = value
  return config


def _convert(raw: str, current: Any, what: str) -> Any:
  """Parses ``raw`` as the type of ``current``; ``None`` unsets a field."""
  if raw == "None":
    return None
  if isinstance(current, bool):
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise ConfigError(f"{what}: expected true or false, got {raw!r}")
  if isinstance(current, int):
    try:
      return int(raw)
    except ValueError:
      raise ConfigError(f"{what}: expected an integer, got {raw!r}") from None
  if isinstance(current, float):
    try:
      return float(raw)
    except ValueError:
      raise ConfigError(f"{what}: expected a number, got {raw!r}") from None
  if isinstance(current, str):
    return raw
  try:
    value = ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    if current is None:
      return raw
    raise ConfigError(
        f"{what}: expected a Python literal like {current!r}, got {raw!r}"
    ) from None
  if isinstance(current, (tuple, list)) and not isinstance(value, (tuple, list)):
    raise ConfigError(f"{what}: expected a sequence like {current!r}")
  if isinstance(current, tuple):
    return tuple(value)
  if isinstance(current, ml_collections.ConfigDict) and not isinstance(
      value, Mapping):
    raise ConfigError(f"{what}: expected a dict like {current.to_dict()!r}")
  return value


def _require(ok: bool, field: str, expected: str, value: Any) -> None:
  if not ok:
    raise ConfigError(f"config.{field}: expected {expected}, got {value!r}")


# Evaluation pads every split to a multiple of the batch in memory: a typo
# such as 10**12 would ask for terabytes. FER2013's train split is 28,709.
MAX_BATCH_SIZE = 1 << 16

_REQUIRED = ("seed", "num_epochs", "batch_size", "input", "model", "loss",
             "optimizer", "evals", "checkpoint", "parallel", "log_every_steps",
             "eval_every_epochs")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every field the trainer reads; raises ConfigError naming it."""
  for field in _REQUIRED:
    _require(field in config, field, "a value (field missing)", None)
  _require(isinstance(config.seed, int), "seed", "an integer", config.seed)
  for field in ("num_epochs", "batch_size", "log_every_steps",
                "eval_every_epochs"):
    value = config[field]
    _require(isinstance(value, int) and not isinstance(value, bool)
             and value > 0, field, "a positive integer", value)
  _require(config.batch_size <= MAX_BATCH_SIZE, "batch_size",
           f"at most {MAX_BATCH_SIZE}", config.batch_size)

  inp = config.input
  _require(inp.dataset in data_registry.DATASETS, "input.dataset",
           f"one of {', '.join(data_registry.DATASETS)}", inp.dataset)
  _require(_is_size(inp.image_size), "input.image_size",
           "(height, width) of positive integers", inp.image_size)
  _require(inp.channels in (1, 3), "input.channels", "1 or 3", inp.channels)
  _require(inp.get("pipeline", LEGACY_VALUES["input.pipeline"]) in (
      "memory", "stream", "auto"),
           "input.pipeline", "'memory', 'stream' or 'auto'",
           inp.get("pipeline"))
  protocol = inp.get("protocol", "official")
  _require(protocol in data_registry.PROTOCOLS, "input.protocol",
           f"one of {', '.join(data_registry.PROTOCOLS)}", protocol)
  if protocol != "official":
    _require(isinstance(inp.get("split_seed"), int), "input.split_seed",
             "an integer seed for the protocol's split", inp.get("split_seed"))
  if protocol == "kfold":
    _require(isinstance(inp.get("folds"), int) and inp.folds >= 2,
             "input.folds", "an integer >= 2", inp.get("folds"))
    _require(isinstance(inp.get("fold"), int) and
             0 <= inp.fold < inp.get("folds", 0), "input.fold",
             "an integer in [0, input.folds)", inp.get("fold"))
  for field in ("mean", "std"):
    value = inp.get(field)
    _require(value is None or (_is_numbers(value) and len(value) in (1, 3)),
             f"input.{field}", "None (computed from the train split) or 1 "
             "or 3 numbers", value)
  if inp.get("std") is not None:
    _require(all(s > 0 for s in inp.std), "input.std", "positive numbers",
             inp.std)

  _require(config.model.name in MODEL_NAMES, "model.name",
           f"one of {', '.join(MODEL_NAMES)}", config.model.name)
  _require(config.model.dtype in ("float32", "bfloat16"), "model.dtype",
           "'float32' or 'bfloat16'", config.model.dtype)
  _validate_fusion(config)

  loss = config.loss
  _require(0.0 <= loss.label_smoothing < 1.0, "loss.label_smoothing",
           "a number in [0, 1)", loss.label_smoothing)
  _require(loss.class_weights in (None, "balanced") or _is_numbers(
      loss.class_weights), "loss.class_weights",
           "None, 'balanced' or one positive weight per class",
           loss.class_weights)
  _require(loss.aux_weight >= 0, "loss.aux_weight", "a number >= 0",
           loss.aux_weight)
  name = loss.get("name", LEGACY_VALUES["loss.name"])
  _require(name in LOSSES, "loss.name", f"one of {', '.join(LOSSES)}", name)
  gamma = loss.get("focal_gamma", LEGACY_VALUES["loss.focal_gamma"])
  _require(_is_numbers([gamma]) and gamma >= 0, "loss.focal_gamma",
           "a number >= 0", gamma)
  fraction = loss.get("ohem_fraction", LEGACY_VALUES["loss.ohem_fraction"])
  _require(_is_numbers([fraction]) and 0 < fraction <= 1,
           "loss.ohem_fraction", "a number in (0, 1] (1: every example)",
           fraction)

  opt = config.optimizer
  _require(math.isfinite(opt.learning_rate) and opt.learning_rate > 0,
           "optimizer.learning_rate", "a finite number > 0",
           opt.learning_rate)
  _require(0.0 <= opt.momentum < 1.0, "optimizer.momentum",
           "a number in [0, 1)", opt.momentum)
  _require(opt.weight_decay >= 0, "optimizer.weight_decay", "a number >= 0",
           opt.weight_decay)
  _require(opt.grad_clip_norm is None or opt.grad_clip_norm > 0,
           "optimizer.grad_clip_norm", "None or a number > 0",
           opt.grad_clip_norm)
  _require(not opt.nesterov or opt.momentum > 0, "optimizer.nesterov",
           "False when momentum is 0", opt.nesterov)
  _require(opt.schedule in SCHEDULES, "optimizer.schedule",
           f"one of {', '.join(SCHEDULES)}", opt.schedule)
  _require(opt.warmup_epochs >= 0, "optimizer.warmup_epochs", "a number >= 0",
           opt.warmup_epochs)
  if opt.schedule == "piecewise":
    _require(_is_numbers(opt.boundaries_epochs) and
             list(opt.boundaries_epochs) == sorted(opt.boundaries_epochs),
             "optimizer.boundaries_epochs", "increasing epoch numbers",
             opt.boundaries_epochs)
    _require(0 < opt.decay_factor <= 1, "optimizer.decay_factor",
             "a number in (0, 1]", opt.decay_factor)
  if opt.schedule == "plateau":
    _check_metric_name(config, "optimizer.plateau.metric", opt.plateau.metric)
    _require(opt.plateau.mode in ("max", "min"), "optimizer.plateau.mode",
             "'max' or 'min'", opt.plateau.mode)
    _require(0 < opt.plateau.factor < 1, "optimizer.plateau.factor",
             "a number in (0, 1)", opt.plateau.factor)
    _require(opt.plateau.patience >= 0, "optimizer.plateau.patience",
             "an integer >= 0", opt.plateau.patience)
  frozen = opt.get("frozen", ())
  _require(isinstance(frozen, (tuple, list)) and all(
      _is_regex(p) for p in frozen), "optimizer.frozen",
           "a tuple of regular expressions", frozen)
  _require(isinstance(opt.get("freeze_batch_stats", True), bool),
           "optimizer.freeze_batch_stats", "True or False",
           opt.get("freeze_batch_stats"))
  multipliers = opt.get("lr_multipliers", ())
  _require(isinstance(multipliers, (tuple, list)) and all(
      isinstance(pair, (tuple, list)) and len(pair) == 2 and
      _is_regex(pair[0]) and _is_numbers(pair[1:]) and pair[1] >= 0
      for pair in multipliers), "optimizer.lr_multipliers",
           "a tuple of (regular expression, multiplier >= 0) pairs",
           multipliers)

  init_from = config.get("init_from")
  if init_from is not None and init_from.get("workdir") is not None:
    _require(isinstance(init_from.workdir, str) and init_from.workdir,
             "init_from.workdir", "None or a run directory", init_from.workdir)
    which = init_from.get("checkpoint", "best")
    _require(which in ("best", "latest") or (
        isinstance(which, int) and not isinstance(which, bool) and which > 0)
             or (isinstance(which, str) and which.isdigit()),
             "init_from.checkpoint", "'best', 'latest' or a step number",
             which)

  _require(isinstance(config.evals, ml_collections.ConfigDict) and
           len(config.evals) > 0, "evals", "a dict of named evaluations",
           config.evals)
  for name, ev in config.evals.items():
    _require("/" not in name, f"evals.{name}", "a name without '/'", name)
    _require(isinstance(ev.get("split"), str), f"evals.{name}.split",
             "a split name", ev.get("split"))
    _require(ev.get("tta", "none") in TTA_MODES, f"evals.{name}.tta",
             f"one of {', '.join(TTA_MODES)}", ev.get("tta"))
    if ev.get("tta", "none") == "ten_crop":
      _require(_is_size(ev.get("crop_size")), f"evals.{name}.crop_size",
               "(height, width) for ten-crop", ev.get("crop_size"))
    every = ev.get("every_epochs")
    _require(every is None or (
        isinstance(every, int) and every > 0 and
        every % config.eval_every_epochs == 0), f"evals.{name}.every_epochs",
             f"a multiple of eval_every_epochs ({config.eval_every_epochs})",
             every)

  ckpt = config.checkpoint
  _require(ckpt.every_steps >= 0, "checkpoint.every_steps",
           "an integer >= 0 (0: at the end of each epoch only)",
           ckpt.every_steps)
  _require(ckpt.keep >= 1, "checkpoint.keep", "an integer >= 1", ckpt.keep)
  _check_metric_name(config, "checkpoint.best_metric", ckpt.best_metric)
  _check_metric_eval_runs_always(config, "checkpoint.best_metric",
                                 ckpt.best_metric)
  if config.optimizer.schedule == "plateau":
    _check_metric_eval_runs_always(config, "optimizer.plateau.metric",
                                   config.optimizer.plateau.metric)
  _require(ckpt.best_mode in ("max", "min"), "checkpoint.best_mode",
           "'max' or 'min'", ckpt.best_mode)

  par = config.parallel
  _require(par.backend in BACKENDS, "parallel.backend",
           f"one of {', '.join(BACKENDS)}", par.backend)
  _require(par.cpu_devices is None or (
      isinstance(par.cpu_devices, int) and par.cpu_devices > 0),
           "parallel.cpu_devices", "None or a positive integer",
           par.cpu_devices)
  _require(par.get("num_devices") is None or (
      isinstance(par.num_devices, int) and par.num_devices > 0),
           "parallel.num_devices", "None (all) or a positive integer",
           par.get("num_devices"))


FUSION_FEATURES = ("lbp", "gabor")
FUSION_MODES = ("early", "late")
# One-hot histograms of more bins than this cost more than the CNN.
MAX_LBP_BINS = 256


def _validate_fusion(config: ml_collections.ConfigDict) -> None:
  """``model.fusion``: names, and sizes that fit ``input.image_size``."""
  fusion = config.model.get("fusion")
  if fusion is None:
    return
  feats = fusion.get("features", ())
  _require(isinstance(feats, (tuple, list)) and len(set(feats)) == len(feats)
           and all(f in FUSION_FEATURES for f in feats),
           "model.fusion.features",
           f"a tuple of distinct names from {', '.join(FUSION_FEATURES)} "
           "(() for none)", feats)
  name = config.model.name
  _require(not (feats and name in HANDCRAFTED_MODELS),
           "model.fusion.features", f"() with model {name!r}, which has no "
           "CNN to fuse features into", feats)
  _require(fusion.get("mode") in FUSION_MODES, "model.fusion.mode",
           f"one of {', '.join(FUSION_MODES)}", fusion.get("mode"))
  _require(_is_positive_int(fusion.get("width")), "model.fusion.width",
           "a positive integer", fusion.get("width"))
  _require(isinstance(fusion.get("standardize"), bool),
           "model.fusion.standardize", "True or False",
           fusion.get("standardize"))
  side = min(config.input.image_size) if _is_size(
      config.input.image_size) else 0
  height, width = config.input.image_size if side else (0, 0)
  late = fusion.mode == "late" or name in HANDCRAFTED_MODELS
  if "lbp" in feats or name in HANDCRAFTED_MODELS:
    lbp = fusion.lbp
    _require(_is_positive_int(lbp.get("points")) and lbp.points <= 24,
             "model.fusion.lbp.points", "an integer in [1, 24]",
             lbp.get("points"))
    _require(lbp.get("method") in LBP_METHODS, "model.fusion.lbp.method",
             f"one of {', '.join(LBP_METHODS)}", lbp.get("method"))
    radius = lbp.get("radius")
    _require(_is_numbers([radius]) and 0 < radius and
             2 * math.ceil(radius) + 1 <= side, "model.fusion.lbp.radius",
             f"a number > 0 whose circle (2*ceil(radius)+1 pixels) fits the "
             f"{height}x{width} input", radius)
    if late:
      bins = num_codes(lbp.points, lbp.method)
      _require(bins <= MAX_LBP_BINS, "model.fusion.lbp.method",
               f"at most {MAX_LBP_BINS} histogram bins (method 'uniform' or "
               f"'nri_uniform', or points <= 8); {lbp.method!r} with "
               f"{lbp.points} points has {bins}", lbp.method)
      _check_grid(lbp.get("grid"), "model.fusion.lbp.grid", height, width)
  if "gabor" in feats:
    gabor = fusion.gabor
    ksize = gabor.get("ksize")
    _require(_is_positive_int(ksize) and (ksize | 1) <= side,
             "model.fusion.gabor.ksize", f"a positive integer whose kernel "
             f"(ksize, or ksize+1 when even) fits the {height}x{width} input",
             ksize)
    sigmas, wavelengths = gabor.get("sigmas"), gabor.get("wavelengths")
    _require(_is_numbers(sigmas) and len(sigmas) > 0 and
             all(s > 0 for s in sigmas), "model.fusion.gabor.sigmas",
             "a tuple of numbers > 0", sigmas)
    _require(_is_numbers(wavelengths) and len(wavelengths) == len(sigmas) and
             all(w > 0 for w in wavelengths), "model.fusion.gabor.wavelengths",
             "one number > 0 per sigma", wavelengths)
    _require(_is_positive_int(gabor.get("orientations")),
             "model.fusion.gabor.orientations", "a positive integer",
             gabor.get("orientations"))
    _require(_is_numbers([gabor.get("gamma")]) and gabor.gamma > 0,
             "model.fusion.gabor.gamma", "a number > 0", gabor.get("gamma"))
    if late:
      _check_grid(gabor.get("grid"), "model.fusion.gabor.grid", height, width)


def _check_grid(grid: Any, field: str, height: int, width: int) -> None:
  _require(_is_size(grid) and grid[0] <= height and grid[1] <= width, field,
           f"(rows, columns) of cells, at most {height}x{width} for the "
           f"{height}x{width} input", grid)


def _is_positive_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_metric_name(config: ml_collections.ConfigDict, field: str,
                       value: Any) -> None:
  ok = isinstance(value, str) and value.count("/") == 1
  if ok:
    eval_name, _ = value.split("/")
    ok = eval_name in config.evals
  _require(ok, field, "'<eval name>/<metric>' naming one of config.evals "
           f"({', '.join(config.evals.keys())})", value)


def _check_metric_eval_runs_always(config: ml_collections.ConfigDict,
                                   field: str, value: str) -> None:
  """Selection and schedules need their metric at every evaluation."""
  name = value.split("/")[0]
  every = config.evals[name].get("every_epochs")
  _require(every in (None, config.eval_every_epochs),
           f"evals.{name}.every_epochs",
           f"unset: {field} reads this evaluation, so it runs at every one",
           every)


def _is_regex(value: Any) -> bool:
  if not isinstance(value, str):
    return False
  try:
    re.compile(value)
  except re.error:
    return False
  return True


def _is_size(value: Any) -> bool:
  return (isinstance(value, (tuple, list)) and len(value) == 2 and
          all(isinstance(v, int) and v > 0 for v in value))


def _is_numbers(value: Any) -> bool:
  return isinstance(value, (tuple, list)) and all(
      isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def to_json(config: ml_collections.ConfigDict) -> str:
  """The resolved config as stable, human-readable JSON."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=list)


def from_json(text: str) -> ml_collections.ConfigDict:
  """Reads a config written by ``to_json`` (tuples come back as tuples)."""
  return from_dict(json.loads(text))


def from_dict(value: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A ConfigDict of plain (JSON) data, lists read back as tuples."""
  return ml_collections.ConfigDict(_tuples(dict(value)))


def set_field(tree: dict[str, Any], dotted: str, value: Any) -> None:
  """Sets ``a.b.c`` in nested dicts, creating the sections on the way."""
  *parents, leaf = dotted.split(".")
  for part in parents:
    tree = tree.setdefault(part, {})
  tree[leaf] = value


def upgrade(saved: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                dict[str, Any]]:
  """A config written by an earlier ferjax, completed with LEGACY_VALUES.

  Returns the completed dict and the fields that were added. A section the
  old config lacks entirely (``init_from``) is added too.
  """
  upgraded = json.loads(json.dumps(dict(saved), default=list))
  added = {}
  for dotted, value in LEGACY_VALUES.items():
    node: Any = upgraded
    *parents, leaf = dotted.split(".")
    for part in parents:
      node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and leaf in node:
      continue
    if node is not None and not isinstance(node, dict):
      continue  # A section replaced by a value: validation names it.
    value = json.loads(json.dumps(value))  # As read back from JSON.
    set_field(upgraded, dotted, value)
    added[dotted] = value
  return upgraded, added


def _tuples(value: Any) -> Any:
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  return value


def differing_fields(a: Mapping[str, Any], b: Mapping[str, Any],
                     prefix: str = "") -> list[str]:
  """Dotted names of the fields whose values differ between two dicts."""
  out = []
  for key in sorted(set(a) | set(b)):
    name = f"{prefix}{key}"
    va, vb = a.get(key), b.get(key)
    if isinstance(va, Mapping) and isinstance(vb, Mapping):
      out += differing_fields(va, vb, name + ".")
    elif _tuples(va) != _tuples(vb):
      out.append(name)
  return out

