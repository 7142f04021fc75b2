"""Configs as data: defaults, loading ``file.py[:args]``, overrides, upgrade.

Configs are code (``experiments/<dataset>_<model>.py`` with ``get_config()``),
as in big_vision. Everything here runs before JAX starts, so a typo in a field
name or a bad value fails in milliseconds instead of after compilation; the
checks of every field are in ``config_checks``.
"""

import ast
import importlib.util
import json
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections


FUSION_FEATURES = ("lbp", "gabor", "geometry")
FUSION_MODES = ("early", "late")


class ConfigError(ValueError):
  """A config file, argument or field that is not what ferjax expects."""


# Fields saying where and how a run executes, not what it computes: they may
# differ when a run is resumed, swept or reproduced on another machine (the
# streamed and in-memory pipelines give identical numbers).
WHERE_FIELDS = ("parallel.", "slurm.", "input.data_dir", "input.manual_dir",
                "input.pipeline", "input.memory_limit_mb",
                "train.steps_per_call")

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
    "checkpoint.every_epochs": 1,
    "parallel.deterministic_gpu": False,
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
    # No mixing, no moving average; beta only matters with effective_number.
    "input.mix.mixup_alpha": 0.0,
    "input.mix.cutmix_alpha": 0.0,
    "input.mix.cutmix_prob": 0.5,
    "loss.class_balance_beta": 0.9999,
    "optimizer.ema_decay": 0.0,
    "train.steps_per_call": "1",
    "input.mixture": (),  # One dataset.
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
  # Other datasets' splits added to train (data/mixture.py): a tuple of
  # {"dataset": ..., "weight": ..., ...}.
  c.input.mixture = ()
  c.input.image_size = (48, 48)
  c.input.channels = 1
  c.input.mean = None  # None: computed from the train split.
  c.input.std = None
  c.input.augment = ml_collections.ConfigDict()  # See data.augment.augment.
  c.input.pipeline = "auto"  # memory | stream | auto (by memory_limit_mb)
  c.input.memory_limit_mb = 2048
  # Mixup / CutMix of each global batch with itself reversed (data.mix):
  # lam ~ Beta(alpha, alpha), 0 off; with both on, CutMix with cutmix_prob.
  c.input.mix = ml_collections.ConfigDict(dict(
      mixup_alpha=0.0, cutmix_alpha=0.0, cutmix_prob=0.5))

  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet5"
  c.model.dtype = "float32"
  c.model.kwargs = ml_collections.ConfigDict()
  # Hand-crafted features fused into the model (models/fusion.py); () off.
  # lbp_linear, the CNN-free baseline, takes its descriptor from .lbp.
  c.model.fusion = ml_collections.ConfigDict(dict(
      features=(),  # any of 'lbp', 'gabor'; or ('geometry',), mode early
      mode="late",  # early: extra input channels (geometry: beside the
                    # penultimate features) | late: beside the logits
      width=64,  # late: units of the fusion head's hidden Dense
      standardize=True,  # late: each descriptor element to zero mean, unit var
      lbp=dict(points=8, radius=1.0, method="uniform", grid=(6, 6)),
      gabor=dict(ksize=9, sigmas=(2.0, 3.5), wavelengths=(4.0, 8.0),
                 orientations=4, gamma=0.5, grid=(6, 6))))

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "cross_entropy"  # A name in losses.LOSSES.
  c.loss.focal_gamma = 2.0  # focal: (1 - p)^gamma down-weights easy examples.
  # Online hard example mining: only this fraction of each global batch, the
  # examples with the highest loss, contributes; 1.0 keeps every example.
  c.loss.ohem_fraction = 1.0
  c.loss.label_smoothing = 0.0
  # None | 'balanced' (inverse frequency) | 'effective_number' (Cui et al.
  # 2019, with class_balance_beta) | one weight per class.
  c.loss.class_weights = None
  c.loss.class_balance_beta = 0.9999
  c.loss.aux_weight = 0.3  # GoogLeNet's auxiliary heads.

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.weight_decay = 0.0  # Coupled L2, as torch.optim.SGD.
  c.optimizer.grad_clip_norm = None
  # Exponential moving average of the variables, kept beside them (0: none);
  # evals.NAME.weights='ema' evaluates it.
  c.optimizer.ema_decay = 0.0
  c.optimizer.schedule = "constant"  # config_checks.SCHEDULES
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
  # Each: split, tta (a view of evaluate.views.VIEWS: 'none', or 'ten_crop'
  # with crop_size), and optionally
  # weights ('raw' | 'ema', the moving average of optimizer.ema_decay).
  c.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 0  # 0: at epoch ends only.
  # At the end of every Nth epoch; the last step and every evaluation that
  # improves checkpoint.best_metric are saved whatever N is.
  c.checkpoint.every_epochs = 1
  c.checkpoint.keep = 2
  c.checkpoint.best_metric = "test/accuracy"
  c.checkpoint.best_mode = "max"

  # How the step loop runs on the host; the numbers are those of one step
  # per call whatever it says.
  c.train = ml_collections.ConfigDict()
  # Train steps per dispatch (an unrolled lax.scan over them), as a string
  # (a field holds one type): a count, or 'auto', the largest that divides
  # log_every_steps, checkpoint.every_steps and the steps of an epoch, at
  # most 16 (config_checks). Fewer dispatches, less host time, longer
  # compilation; the numbers are those of one step per call.
  c.train.steps_per_call = "1"

  c.parallel = ml_collections.ConfigDict()
  c.parallel.backend = "shard_map"  # axis.BACKENDS: shard_map | pmap
  c.parallel.cpu_devices = None  # CPU only: split the host into N devices.
  c.parallel.num_devices = None  # None: all devices.
  # GPU only: XLA's deterministic kernels (--xla_gpu_deterministic_ops), so
  # that a GPU run, like a CPU run, gives the same numbers every time; costs
  # speed where XLA would use atomics (scatter-adds, some reductions).
  c.parallel.deterministic_gpu = False

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

