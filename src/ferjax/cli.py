"""The ``ferjax`` command: train, eval, models, data, predict.

Heavy imports happen inside each command, and nothing touches a device
before the config is read: CPU device counts and ``jax.distributed`` must be
set up before JAX initialises its backends.
"""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

import jax

from ferjax import config as config_lib
from ferjax import finite_json
from ferjax import fs_errors
from ferjax.train import distributed


def _experiment_config(args: argparse.Namespace, extra: list[str]):
  """The validated config, with CPU devices set up before JAX starts."""
  config = config_lib.load_config(args.config)
  config = config_lib.apply_overrides(config, config_lib.split_override_args(extra))
  config_lib.validate(config)
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  if distributed.initialize(args) and jax.process_index():
    # Process 0 speaks for the job; the others report only problems.
    logging.getLogger("ferjax").setLevel(logging.WARNING)
  return config


def _is_chief() -> bool:
  return jax.process_index() == 0


def _train(args: argparse.Namespace, extra: list[str]) -> int:
  config = _experiment_config(args, extra)
  from ferjax.train import loop
  results = loop.train_and_evaluate(config, args.workdir,
                                    argv=["ferjax", *sys.argv[1:]])
  if not _is_chief():
    return 0
  for name, r in results.items():
    print(f"{name}: accuracy={r['accuracy']:.4f} macro_f1={r['macro_f1']:.4f}"
          f" loss={r['loss']:.4f} ({r['num_examples']} examples)")
  return 0


def _crossval(args: argparse.Namespace, extra: list[str]) -> int:
  config = _experiment_config(args, extra)
  from ferjax.train import crossval
  summary = crossval.run_folds(config, args.workdir,
                               argv=["ferjax", *sys.argv[1:]])
  if not _is_chief():
    return 0
  for name, m in summary["metrics"].items():
    print(f"{name}: {m['mean']:.4f} +- {m['std']:.4f} over "
          f"{summary['folds']} folds")
  return 0


def _eval(args: argparse.Namespace, extra: list[str]) -> int:
  if extra:
    raise config_lib.ConfigError(f"unrecognised arguments: {' '.join(extra)}")
  from ferjax.train import evaluate
  config = evaluate.load_run_config(args.workdir)
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  result = evaluate.evaluate_run(args.workdir, split=args.split,
                                 checkpoint=args.checkpoint)
  print(finite_json.dumps(result))
  return 0


def _delegated(module: str) -> Callable[[list[str]], int]:
  """A command whose module parses its own arguments."""

  def run(argv: list[str]) -> int:
    return importlib.import_module(module).main(argv)

  return run


# Commands with their own parsers: `ferjax <command> ...` -> module.main(...).
_DELEGATED = {
    ("models",): _delegated("ferjax.models.summary"),
    ("data", "prepare"): _delegated("ferjax.data.prepare"),
    ("predict",): _delegated("ferjax.recognition.predict"),
    ("sweep",): _delegated("ferjax.experiment.sweep"),
    ("report",): _delegated("ferjax.experiment.report"),
    ("reproduce",): _delegated("ferjax.experiment.reproduce"),
    ("convert", "torchvision"): _delegated("ferjax.models.torchvision_vgg"),
}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ferjax", description="Facial expression recognition in JAX.",
      epilog="Also: 'ferjax models', 'ferjax data prepare NAME', "
      "'ferjax predict --workdir RUN IMAGE...', 'ferjax sweep --config FILE "
      "--workdir DIR', 'ferjax report DIR...', 'ferjax reproduce RUN', "
      "'ferjax convert torchvision VGG_PTH OUT' "
      "(each with --help).")
  sub = parser.add_subparsers(dest="command", required=True)

  train = sub.add_parser(
      "train", help="train an experiment config",
      epilog="Any config field can be set with --config.FIELD=VALUE.")
  train.add_argument("--config", required=True, type=os.path.expanduser,
                     help="experiment file, optionally with :args, e.g. "
                     "experiments/quickstart.py:runlocal")
  train.add_argument("--workdir", required=True, type=os.path.expanduser,
                     help="run directory (resumed if it holds checkpoints)")
  distributed.add_flags(train)
  train.set_defaults(func=_train)

  cv = sub.add_parser(
      "crossval", help="train every fold of a kfold experiment; mean and std",
      epilog="Any config field can be set with --config.FIELD=VALUE.")
  cv.add_argument("--config", required=True, type=os.path.expanduser)
  cv.add_argument("--workdir", required=True, type=os.path.expanduser,
                  help="folds train in WORKDIR/fold_<i>")
  distributed.add_flags(cv)
  cv.set_defaults(func=_crossval)

  ev = sub.add_parser("eval", help="evaluate a run's checkpoint as JSON")
  ev.add_argument("--workdir", required=True, type=os.path.expanduser)
  ev.add_argument("--split", default=None,
                  help="dataset split (default: the run's own evals)")
  ev.add_argument("--checkpoint", default="best",
                  help="best, latest or a step number")
  ev.set_defaults(func=_eval)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  for noisy in ("jax._src", "orbax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  # Orbax reports through absl, including a warning on every read-only open
  # and a traceback per background thread when a save fails; the failure
  # also reaches the caller as an exception, reported below once.
  logging.getLogger("absl").setLevel(logging.CRITICAL)
  argv = list(sys.argv[1:] if argv is None else argv)
  for words, run in _DELEGATED.items():
    if tuple(argv[:len(words)]) == words:
      return run(argv[len(words):])
  args, extra = build_parser().parse_known_args(argv)
  try:
    return args.func(args, extra)
  except (config_lib.ConfigError, FileNotFoundError, ValueError) as e:
    print(f"ferjax {args.command}: error: {e}", file=sys.stderr)
    return 2
  except OSError as e:
    print(f"ferjax {args.command}: error: {fs_errors.describe(e)}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
