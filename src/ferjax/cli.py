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
  shortcuts = [f"--config.input.{field}={value}"
               for field, value in (("manual_dir", args.manual_dir),
                                    ("data_dir", args.data_dir)) if value]
  config = config_lib.apply_overrides(
      config, config_lib.split_override_args([*shortcuts, *extra]))
  config_lib.validate(config)
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  parallel.configure_gpu_determinism(config.parallel.deterministic_gpu)
  if distributed.initialize(args) and jax.process_index():
    # Process 0 speaks for the job; the others report only problems.
    logging.getLogger("ferjax").setLevel(logging.WARNING)
  return config


def _is_chief() -> bool:
  return jax.process_index() == 0


def _train(args: argparse.Namespace, extra: list[str]) -> int:
  config = _experiment_config(args, extra)
  from ferjax.train import loop
  from ferjax.train import metrics
  results = loop.train_and_evaluate(config, args.workdir,
                                    argv=["ferjax", *sys.argv[1:]])
  from ferjax.run_dir import RunDir
  # Every process opens the checkpoints: Orbax synchronises them.
  step, by, best = RunDir(args.workdir).best_checkpoint()
  if not _is_chief():
    return 0
  print(f"final step {step['final']}:")
  for name, r in results.items():
    shown = " ".join(f"{m}={r[m]:.4f}" for m in (*metrics.HEADLINE, "loss"))
    print(f"  {name}: {shown} ({r['num_examples']} examples)")
  if by and best:
    shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(best.items())
                      if k.rsplit("/", 1)[-1] in metrics.HEADLINE)
    print(f"best checkpoint: step {step['best']}, selected by {by}: {shown}"
          f"\n  ('ferjax eval --workdir {args.workdir}' evaluates it)")
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


def _crop_size(text: str) -> tuple[int, int]:
  try:
    height, width = (int(v) for v in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected H,W in pixels, e.g. 40,40; got {text!r}") from None
  return height, width


def _eval(args: argparse.Namespace, extra: list[str]) -> int:
  if extra:
    raise config_lib.ConfigError(f"unrecognised arguments: {' '.join(extra)}")
  if len(args.workdir) > 1 and args.split is None:
    raise config_lib.ConfigError(
        "an ensemble (several --workdir) is evaluated on one --split")
  checkpoints = args.checkpoint or ["best"]
  if len(checkpoints) not in (1, len(args.workdir)):
    raise config_lib.ConfigError(
        f"--checkpoint: expected one for every run or one per --workdir "
        f"({len(args.workdir)}), got {len(checkpoints)}")
  from ferjax.run_dir import RunDir
  config = RunDir(args.workdir[0]).read_config()
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  parallel.configure_gpu_determinism(
      config.parallel.get("deterministic_gpu", False))
  from ferjax.train import evaluate
  options = dict(split=args.split, tta=args.tta, crop_size=args.crop_size,
                 data_dir=args.data_dir, manual_dir=args.manual_dir)
  if len(args.workdir) > 1:
    result = evaluate.evaluate_ensemble(args.workdir, checkpoint=checkpoints,
                                        **options)
  else:
    result = evaluate.evaluate_run(args.workdir[0], checkpoint=checkpoints[0],
                                   **options)
  if args.json:
    print(finite_json.dumps(result))
  else:
    print(evaluate.format_results(result, per_class=args.per_class))
  return 0


def _export(args: argparse.Namespace, extra: list[str]) -> int:
  if extra:
    raise config_lib.ConfigError(f"unrecognised arguments: {' '.join(extra)}")
  from ferjax.run_dir import export_variables
  out = export_variables(args.workdir, args.out, checkpoint=args.checkpoint,
                         argv=["ferjax", *sys.argv[1:]])
  print(f"exported {args.workdir} ({args.checkpoint} checkpoint) to {out}")
  return 0


def _delegated(module: str) -> Callable[[list[str]], int]:
  """A command whose module parses its own arguments."""

  def run(argv: list[str]) -> int:
    return importlib.import_module(module).main(argv)

  return run


# Commands with their own parsers: `ferjax <command> ...` -> module.main(...),
# with the one-line help that `ferjax --help` lists.
_DELEGATED = {
    ("models",): ("list every model with parameters and FLOPs",
                  "ferjax.models.summary"),
    ("data", "prepare"): ("build a dataset once (synthetic_fer, fer2013, "
                          "ck_plus) and print its split sizes",
                          "ferjax.data.prepare"),
    ("sweep",): ("run every trial of an experiment's get_sweep(); "
                 "relaunch to resume", "ferjax.experiment.sweep_command"),
    ("report",): ("tables and plots over runs and sweeps",
                  "ferjax.experiment.report"),
    ("reproduce",): ("rerun a run from its manifest and compare the metrics",
                     "ferjax.experiment.reproduce"),
    ("predict",): ("detect faces in photos and label their expressions",
                   "ferjax.recognition.predict"),
    ("convert", "torchvision"): ("import torchvision weights as a run "
                                 "directory", "ferjax.models.torchvision_vgg"),
}

# What the first word of a two-word command groups.
_GROUPS = {"data": "datasets: 'ferjax data prepare NAME'",
           "convert": "weights from other frameworks: "
                      "'ferjax convert torchvision PTH OUT'"}


class _Version(argparse.Action):
  """--version: ferjax's version and the backend JAX would use."""

  def __init__(self, option_strings, dest, **kwargs):
    super().__init__(option_strings, dest, nargs=0,
                     help="print the version and JAX backend, then exit")

  def __call__(self, parser, namespace, values, option_string=None):
    from ferjax import __version__  # pylint: disable=g-import-not-at-top
    print(f"ferjax {__version__} (jax {jax.__version__}, "
          f"backend {jax.default_backend()}, "
          f"{jax.device_count()} device(s))")
    parser.exit()


def _add_experiment_flags(parser: argparse.ArgumentParser,
                          workdir_help: str) -> None:
  """--config, --workdir and the data-path shortcuts of train and crossval."""
  parser.add_argument("--config", required=True, type=os.path.expanduser,
                      help="experiment file, optionally with :args, e.g. "
                      "experiments/quickstart.py:runlocal")
  parser.add_argument("--workdir", required=True, type=os.path.expanduser,
                      help=workdir_help)
  parser.add_argument("--manual-dir", metavar="DIR", type=os.path.expanduser,
                      help="where a manually downloaded dataset lies; same "
                      "as --config.input.manual_dir=DIR")
  parser.add_argument("--data-dir", metavar="DIR", type=os.path.expanduser,
                      help="TFDS data dir of the prepared dataset; same as "
                      "--config.input.data_dir=DIR")
  distributed.add_flags(parser)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ferjax", description="Facial expression recognition in JAX.",
      epilog="'ferjax COMMAND --help' describes each command.")
  parser.add_argument("--version", action=_Version)
  sub = parser.add_subparsers(dest="command", required=True,
                              metavar="COMMAND")
  overrides = "Any config field can be set with --config.FIELD=VALUE."

  train = sub.add_parser("train", help="train an experiment config",
                         epilog=overrides)
  _add_experiment_flags(
      train, "run directory (resumed if it holds checkpoints)")
  train.set_defaults(func=_train)

  ev = sub.add_parser(
      "eval", help="evaluate a run's checkpoint, or an ensemble of runs",
      description="Metrics of a run's checkpoint on its evals or on --split; "
      "with several --workdir, each member's and their ensemble's (the mean "
      "of their softmax, each member with its own preprocessing).")
  ev.add_argument("--workdir", required=True, action="append",
                  type=os.path.expanduser,
                  help="run directory written by 'ferjax train'; repeat it "
                  "to evaluate an ensemble (needs --split)")
  ev.add_argument("--split", default=None,
                  help="dataset split, TFDS slicing allowed (default: the "
                  "run's own evals)")
  ev.add_argument("--checkpoint", action="append",
                  help="best (default), latest or a step number; for an "
                  "ensemble once for all members or once per --workdir, "
                  "in the same order")
  ev.add_argument("--tta", choices=("none", "ten_crop"),
                  help="test-time augmentation for every eval (default: "
                  "each eval's own)")
  ev.add_argument("--crop-size", type=_crop_size, metavar="H,W",
                  help="ten-crop size in pixels of the stored image "
                  "(default: the eval's own, else 90%% of the image)")
  ev.add_argument("--data-dir", metavar="DIR", type=os.path.expanduser,
                  help="TFDS data dir of the dataset on this machine "
                  "(default: the run's)")
  ev.add_argument("--manual-dir", metavar="DIR", type=os.path.expanduser,
                  help="where its manual download lies, to build it here")
  ev.add_argument("--per-class", action="store_true",
                  help="also print per-class accuracy")
  ev.add_argument("--json", action="store_true",
                  help="print the full result (confusion matrices included) "
                  "as JSON instead of tables")
  ev.set_defaults(func=_eval)

  cv = sub.add_parser(
      "crossval", help="train every fold of a kfold experiment; mean and std",
      epilog=overrides)
  _add_experiment_flags(cv, "folds train in WORKDIR/fold_<i>")
  cv.set_defaults(func=_crossval)

  export = sub.add_parser(
      "export", help="a run reduced to one checkpoint's model variables, "
      "to ship a model",
      description="Writes OUT: the run's config, manifest and metrics and "
      "one checkpoint without optimizer state, which predict, eval and "
      "init_from read like the run.")
  export.add_argument("--workdir", required=True, type=os.path.expanduser,
                      help="run directory written by 'ferjax train'")
  export.add_argument("--out", required=True, type=os.path.expanduser,
                      help="new directory to create")
  export.add_argument("--checkpoint", default="best",
                      help="best, latest or a step number")
  export.set_defaults(func=_export)

  for words, (help_text, _) in _DELEGATED.items():
    if len(words) == 1:
      sub.add_parser(words[0], help=help_text, add_help=False)
    else:
      group = sub.add_parser(words[0], help=_GROUPS[words[0]])
      group.add_subparsers(required=True, metavar="SUBCOMMAND").add_parser(
          words[1], help=help_text)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  for noisy in ("jax._src", "orbax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  # Orbax reports through absl, including a warning on every read-only open
  # and a traceback per background thread when a save fails; the failure
  # also reaches the caller as an exception, reported below once.
  logging.getLogger("absl").setLevel(logging.CRITICAL)
  # Orbax's asyncio tasks log a failed write once more ("Task exception was
  # never retrieved") after it has reached the caller.
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)
  argv = list(sys.argv[1:] if argv is None else argv)
  for words, (_, module) in _DELEGATED.items():
    if tuple(argv[:len(words)]) == words:
      return _delegated(module)(argv[len(words):])
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
