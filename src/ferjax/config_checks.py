"""The checks of a config: every field the trainer reads, one per section.

A failed check raises ``ConfigError`` naming the field, what was expected and
what was found, before any work. The lists of names it checks against come
from their registries (datasets, models, losses, test-time views, LBP
methods), and a view's own fields are checked by its entry. The config is
complete: base_config's fields, or a saved one that ``config.upgrade``
completed as it was read (``RunDir.read_config``).
"""

import math
import re
from collections.abc import Sequence
from typing import Any

import ml_collections

from ferjax.axis import BACKENDS
from ferjax.config import FUSION_FEATURES, FUSION_MODES
from ferjax.config import ConfigError
from ferjax.data import registry as data_registry
from ferjax.evaluate.views import VIEWS
from ferjax.features.lbp import LBP_METHODS
from ferjax.features.lbp import num_codes
from ferjax.losses import CLASS_WEIGHTS
from ferjax.losses import LOSSES
from ferjax.models import HANDCRAFTED_MODELS
from ferjax.models import GEOMETRIC_MODELS
from ferjax.models import MODEL_NAMES

# The schedules train.optimizer builds (plateau: constant, scaled by the
# loop on a metric's plateaus).
SCHEDULES = ("constant", "piecewise", "cosine", "plateau")
TTA_MODES = tuple(VIEWS)
# Which variables an evaluation measures: as trained, or their moving average.
EVAL_WEIGHTS = ("raw", "ema")
# One-hot histograms of more bins than this cost more than the CNN.
MAX_LBP_BINS = 256


def _require(ok: bool, field: str, expected: str, value: Any) -> None:
  if not ok:
    raise ConfigError(f"config.{field}: expected {expected}, got {value!r}")


# Evaluation pads every split to a multiple of the batch in memory: a typo
# such as 10**12 would ask for terabytes. FER2013's train split is 28,709.
MAX_BATCH_SIZE = 1 << 16

_REQUIRED = ("seed", "num_epochs", "batch_size", "input", "model", "loss",
             "optimizer", "evals", "checkpoint", "parallel", "log_every_steps",
             "eval_every_epochs")


def validate_statistics(config: ml_collections.ConfigDict) -> None:
  """``input.mean`` and ``input.std``: None (the trainer computes them) or
  finite, the std positive.

  Evaluation and inference apply them to every image, and a NaN in a
  hand-edited config.json gives chance accuracy without an error; every
  command that loads a run checks them with the rest
  (``RunDir.read_config``).
  """
  inp = config.input
  for field in ("mean", "std"):
    value = inp.get(field)
    _require(value is None or (_is_numbers(value) and len(value) in (1, 3)),
             f"input.{field}", "None (computed from the train split) or 1 "
             "or 3 finite numbers", value)
  if inp.get("std") is not None:
    _require(all(s > 0 for s in inp.std), "input.std", "positive numbers",
             inp.std)


# What converted weights (``ferjax convert``) were trained on: a dataset
# without a builder here, so such a run is read (predict, init_from), never
# trained or evaluated.
CONVERTED_DATASETS = ("imagenet",)


def validate(config: ml_collections.ConfigDict, *,
             converted: bool = False) -> None:
  """Checks every field the trainer reads; raises ConfigError naming it.

  ``converted``: the config of a converted run, which may name one of
  ``CONVERTED_DATASETS``.
  """
  datasets = (*data_registry.DATASETS,
              *(CONVERTED_DATASETS if converted else ()))
  for check in _SECTIONS:
    if check is _check_input:
      _check_input(config, datasets)
    else:
      check(config)


def _check_top(config: ml_collections.ConfigDict) -> None:
  """The fields every run needs, and the counts."""
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


def _check_input(config: ml_collections.ConfigDict,
                 datasets: Sequence[str] = tuple(data_registry.DATASETS)
                 ) -> None:
  """``input``: the dataset, image size, protocol and normalisation."""
  inp = config.input
  _require(inp.dataset in datasets, "input.dataset",
           f"one of {', '.join(datasets)}", inp.dataset)
  _require(_is_size(inp.image_size), "input.image_size",
           "(height, width) of positive integers", inp.image_size)
  _require(inp.channels in (1, 3), "input.channels", "1 or 3", inp.channels)
  _require(inp.get("pipeline") in ("memory", "stream", "auto"),
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
  validate_statistics(config)
  augment = inp.get("augment") or {}
  for key in ("rotation", "brightness", "contrast"):
    value = augment.get(key)
    _require(value is None or _is_number(value), f"input.augment.{key}",
             "None or a finite number", value)
  _check_mixture(inp.get("mixture") or (), datasets)
  mix = inp.get("mix") or {}
  for field in ("mixup_alpha", "cutmix_alpha", "cutmix_prob"):
    value = mix.get(field)
    _require(_is_number(value) and value >= 0 and (
        field != "cutmix_prob" or value <= 1), f"input.mix.{field}",
             "a number in [0, 1]" if field == "cutmix_prob" else
             "a number >= 0 (0: off)", value)


def _check_mixture(mixture: Any, datasets: Sequence[str]) -> None:
  """``input.mixture``: entries of registered datasets with valid keys."""
  from ferjax.data import mixture as mixture_lib
  _require(isinstance(mixture, (list, tuple)), "input.mixture",
           "a tuple of {'dataset': ..., 'weight': ...} entries", mixture)
  try:
    parts = mixture_lib.parts(mixture)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.{e}") from None
  for i, part in enumerate(parts):
    _require(part.dataset in datasets, f"input.mixture[{i}].dataset",
             f"one of {', '.join(datasets)}", part.dataset)


def _check_model(config: ml_collections.ConfigDict) -> None:
  """``model``: a registered name, its dtype and fusion."""
  _require(config.model.name in (*MODEL_NAMES, *GEOMETRIC_MODELS),
           "model.name", f"one of {', '.join(MODEL_NAMES + GEOMETRIC_MODELS)}",
           config.model.name)
  _require(config.model.dtype in ("float32", "bfloat16"), "model.dtype",
           "'float32' or 'bfloat16'", config.model.dtype)
  _check_fusion(config)


def _check_loss(config: ml_collections.ConfigDict) -> None:
  """``loss``: a registered loss and its hyperparameters."""
  loss = config.loss
  _require(0.0 <= loss.label_smoothing < 1.0, "loss.label_smoothing",
           "a number in [0, 1)", loss.label_smoothing)
  _require(loss.class_weights is None or loss.class_weights in CLASS_WEIGHTS
           or _is_numbers(loss.class_weights), "loss.class_weights",
           "None, 'balanced', 'effective_number' or one finite positive "
           "weight per class", loss.class_weights)
  beta = loss.get("class_balance_beta")
  _require(_is_number(beta) and 0 <= beta < 1, "loss.class_balance_beta",
           "a number in [0, 1)", beta)
  _require(_is_number(loss.aux_weight) and loss.aux_weight >= 0,
           "loss.aux_weight", "a finite number >= 0", loss.aux_weight)
  name = loss.get("name")
  _require(name in LOSSES, "loss.name", f"one of {', '.join(LOSSES)}", name)
  gamma = loss.get("focal_gamma")
  _require(_is_number(gamma) and gamma >= 0, "loss.focal_gamma",
           "a finite number >= 0", gamma)
  fraction = loss.get("ohem_fraction")
  _require(_is_number(fraction) and 0 < fraction <= 1,
           "loss.ohem_fraction", "a number in (0, 1] (1: every example)",
           fraction)


def _check_optimizer(config: ml_collections.ConfigDict) -> None:
  """``optimizer``: rates, schedule, freezing and multipliers."""
  opt = config.optimizer
  _require(_is_number(opt.learning_rate) and opt.learning_rate > 0,
           "optimizer.learning_rate", "a finite number > 0",
           opt.learning_rate)
  _require(_is_number(opt.momentum) and 0.0 <= opt.momentum < 1.0,
           "optimizer.momentum",
           "a number in [0, 1)", opt.momentum)
  _require(_is_number(opt.weight_decay) and opt.weight_decay >= 0,
           "optimizer.weight_decay", "a finite number >= 0", opt.weight_decay)
  _require(opt.grad_clip_norm is None or (
      _is_number(opt.grad_clip_norm) and opt.grad_clip_norm > 0),
           "optimizer.grad_clip_norm", "None or a finite number > 0",
           opt.grad_clip_norm)
  ema_decay = _ema_decay(config)
  _require(_is_number(ema_decay) and 0 <= ema_decay < 1,
           "optimizer.ema_decay", "a number in [0, 1) (0: no moving average)",
           ema_decay)
  _require(not opt.nesterov or opt.momentum > 0, "optimizer.nesterov",
           "False when momentum is 0", opt.nesterov)
  _require(opt.schedule in SCHEDULES, "optimizer.schedule",
           f"one of {', '.join(SCHEDULES)}", opt.schedule)
  _require(_is_number(opt.warmup_epochs) and opt.warmup_epochs >= 0,
           "optimizer.warmup_epochs", "a finite number >= 0",
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


def _ema_decay(config: ml_collections.ConfigDict) -> Any:
  return config.optimizer.get("ema_decay")


def _check_init_from(config: ml_collections.ConfigDict) -> None:
  """``init_from``: the run to start from."""
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


def _check_evals(config: ml_collections.ConfigDict) -> None:
  """``evals``: named evaluations of a split, their kind and weights."""
  ema_decay = _ema_decay(config)
  _require(isinstance(config.evals, ml_collections.ConfigDict) and
           len(config.evals) > 0, "evals", "a dict of named evaluations",
           config.evals)
  for name, ev in config.evals.items():
    _require("/" not in name, f"evals.{name}", "a name without '/'", name)
    _require(isinstance(ev.get("split"), str), f"evals.{name}.split",
             "a split name", ev.get("split"))
    _require(ev.get("tta", "none") in TTA_MODES, f"evals.{name}.tta",
             f"one of {', '.join(TTA_MODES)}", ev.get("tta"))
    weights = ev.get("weights", "raw")
    _require(weights in EVAL_WEIGHTS, f"evals.{name}.weights",
             f"one of {', '.join(EVAL_WEIGHTS)}", weights)
    _require(weights != "ema" or (_is_numbers([ema_decay]) and ema_decay > 0),
             f"evals.{name}.weights", "'raw' when optimizer.ema_decay is 0 "
             "(no moving average is kept)", weights)
    for field, expected, ok in VIEWS[ev.get("tta", "none")].fields:
      _require(ok(ev.get(field)), f"evals.{name}.{field}", expected,
               ev.get(field))
    every = ev.get("every_epochs")
    _require(every is None or (
        isinstance(every, int) and every > 0 and
        every % config.eval_every_epochs == 0), f"evals.{name}.every_epochs",
             f"a multiple of eval_every_epochs ({config.eval_every_epochs})",
             every)


def _check_checkpoint(config: ml_collections.ConfigDict) -> None:
  """``checkpoint``: how many to keep and which is best."""
  ckpt = config.checkpoint
  _require(ckpt.every_steps >= 0, "checkpoint.every_steps",
           "an integer >= 0 (0: at the end of each epoch only)",
           ckpt.every_steps)
  every_epochs = ckpt.get("every_epochs", 1)
  _require(isinstance(every_epochs, int) and not isinstance(every_epochs, bool)
           and every_epochs >= 1, "checkpoint.every_epochs",
           "a positive integer (1: every epoch)", every_epochs)
  _require(ckpt.keep >= 1, "checkpoint.keep", "an integer >= 1", ckpt.keep)
  _check_metric_name(config, "checkpoint.best_metric", ckpt.best_metric)
  _check_metric_eval_runs_always(config, "checkpoint.best_metric",
                                 ckpt.best_metric)
  if config.optimizer.schedule == "plateau":
    _check_metric_eval_runs_always(config, "optimizer.plateau.metric",
                                   config.optimizer.plateau.metric)
  _require(ckpt.best_mode in ("max", "min"), "checkpoint.best_mode",
           "'max' or 'min'", ckpt.best_mode)


def _check_parallel(config: ml_collections.ConfigDict) -> None:
  """``parallel``: backend and device counts."""
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
  _require(isinstance(par.get("deterministic_gpu", False), bool),
           "parallel.deterministic_gpu", "true or false",
           par.get("deterministic_gpu"))


# 'auto' stops here: longer calls save little more host time, compile longer
# (the k steps are unrolled), and a streamed run holds this many global
# batches per call on the devices.
MAX_STEPS_PER_CALL = 16


def _check_train(config: ml_collections.ConfigDict) -> None:
  """``train.steps_per_call``: 'auto' or a count every boundary divides.

  Metrics, logging windows, checkpoints, evaluations and epoch ends all fall
  between calls, so k must divide ``log_every_steps`` and
  ``checkpoint.every_steps`` (and the steps of an epoch, checked once the
  data is known: ``check_steps_per_epoch``).
  """
  k = requested_steps_per_call(config)
  if k == "auto":
    return
  _require(_is_positive_int(k), "train.steps_per_call",
           "'auto' or a positive integer", k)
  # The k steps are unrolled into one program: compile time and memory grow
  # with k (140 took minutes and over 6 GB), while the host time saved
  # levels off well before 'auto''s cap.
  _require(k <= MAX_STEPS_PER_CALL, "train.steps_per_call",
           f"at most {MAX_STEPS_PER_CALL} (the steps of a call are unrolled "
           "into one program, which compiles for minutes in gigabytes "
           "beyond that), or 'auto'", k)
  for field, every in (("log_every_steps", config.log_every_steps),
                       ("checkpoint.every_steps",
                        config.checkpoint.every_steps)):
    _require(not every or every % k == 0, "train.steps_per_call",
             f"a divisor of {field} ({every}), so that its steps fall "
             "between calls, or 'auto'", k)


def requested_steps_per_call(config: ml_collections.ConfigDict) -> Any:
  """``train.steps_per_call`` as 'auto' or a number: the field is a string
  ('4'), and a config.json written by hand may hold a number."""
  k = config.get("train", {}).get("steps_per_call", 1)
  # ASCII digits only: '²'.isdigit() holds, but int('²') fails.
  return int(k) if isinstance(k, str) and k.isascii() and k.isdigit() else k


def check_steps_per_epoch(k: int, steps_per_epoch: int) -> None:
  """Epoch ends (evaluations, saves) fall between calls of ``k`` steps."""
  _require(steps_per_epoch % k == 0, "train.steps_per_call",
           f"a divisor of the {steps_per_epoch} steps of an epoch (train "
           "examples // batch_size), or 'auto'", k)


_SECTIONS = (
    _check_top,
    _check_input,
    _check_model,
    _check_loss,
    _check_optimizer,
    _check_init_from,
    _check_evals,
    _check_checkpoint,
    _check_parallel,
    _check_train,
)


def _check_fusion(config: ml_collections.ConfigDict) -> None:
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
  if "geometry" in feats:
    _check_geometry_fusion(config)
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


def _check_geometry_fusion(config: ml_collections.ConfigDict) -> None:
  """``model.fusion.features=('geometry',)``: each example's descriptor is
  read from the landmark cache of its stored split, row for row, so the
  splits must be the stored ones, held in memory, and unmixed."""
  fusion, inp = config.model.fusion, config.input
  _require(tuple(fusion.features) == ("geometry",), "model.fusion.features",
           "('geometry',) alone (the face's geometry does not combine with "
           "the hand-crafted image features)", fusion.features)
  _require(fusion.mode == "early", "model.fusion.mode",
           "'early' with geometry (its descriptor joins the CNN's "
           "penultimate features; score-level late fusion with a geometry "
           "run is `ferjax fuse`)", fusion.mode)
  _require(inp.get("protocol", "official") == "official", "input.protocol",
           "'official' with geometry fusion (the landmark cache follows the "
           "stored splits)", inp.get("protocol"))
  _require(not inp.get("mixture"), "input.mixture",
           "() with geometry fusion (other datasets' faces have no "
           "descriptors here)", inp.get("mixture"))
  _require(inp.get("pipeline", "auto") != "stream", "input.pipeline",
           "'memory' or 'auto' with geometry fusion (descriptors travel "
           "with the in-memory split)", inp.get("pipeline"))
  mix = inp.get("mix") or {}
  _require(not (mix.get("mixup_alpha") or mix.get("cutmix_alpha")),
           "input.mix", "no mixup or cutmix with geometry fusion (a mixed "
           "image has no one face's geometry)", dict(mix))


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


def _is_number(value: Any) -> bool:
  """A finite int or float: NaN passes no range check and makes every
  number computed from it NaN (an input.mean of NaN gives chance accuracy)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _is_numbers(value: Any) -> bool:
  return isinstance(value, (tuple, list)) and all(map(_is_number, value))
