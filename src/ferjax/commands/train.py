"""``ferjax train``: train an experiment config into a run directory.

Nothing touches a device before the config is read: CPU device counts and
``jax.distributed`` must be set up before JAX initialises its backends.
"""

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

import jax

from ferjax import commands
from ferjax import compilation_cache
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.train import distributed

OVERRIDES = "Any config field can be set with --config.FIELD=VALUE."


def _add_launch_flags(parser: argparse.ArgumentParser) -> None:
  """The launch flags of every multi-process command."""
  group = parser.add_argument_group(
      "several processes (jax.distributed)",
      "Give all three, set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
      "JAX_PROCESS_ID, or pass --distributed alone on SLURM or Cloud TPU. "
      "Without any of them ferjax runs as a single process.")
  group.add_argument("--distributed", action="store_true",
                     help="join a jax.distributed cluster; unset values come "
                     "from the environment or JAX's cluster detection")
  group.add_argument("--coordinator", metavar="HOST:PORT",
                     help="address of process 0's coordination service")
  group.add_argument("--num-processes", type=int, metavar="N",
                     help="how many processes the job has")
  group.add_argument("--process-id", type=int, metavar="I",
                     help="this process's index, 0 to N-1 (0 writes the "
                     "run directory)")
  group.add_argument("--heartbeat-timeout", type=int, default=60,
                     metavar="SECONDS",
                     help="abort when another process is silent this long "
                     "(default %(default)s)")
  group.add_argument("--init-timeout", type=int, default=300,
                     metavar="SECONDS",
                     help="give up when the processes have not all joined "
                     "after this long (default %(default)s)")


def add_experiment_flags(parser: argparse.ArgumentParser,
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
  _add_launch_flags(parser)


def experiment_config(args: argparse.Namespace, extra: list[str]):
  """The validated config, with CPU devices set up before JAX starts."""
  config = config_lib.load_config(args.config)
  shortcuts = [f"--config.input.{field}={value}"
               for field, value in (("manual_dir", args.manual_dir),
                                    ("data_dir", args.data_dir)) if value]
  config = config_lib.apply_overrides(
      config, config_lib.split_override_args([*shortcuts, *extra]))
  config_checks.validate(config)
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  parallel.configure_gpu_determinism(config.parallel.deterministic_gpu)
  compilation_cache.enable(compilation_cache.default_dir())
  launch = distributed.Launch(**{
      f.name: getattr(args, f.name)
      for f in dataclasses.fields(distributed.Launch)})
  if distributed.initialize(launch) and jax.process_index():
    # Process 0 speaks for the job; the others report only problems.
    logging.getLogger("ferjax").setLevel(logging.WARNING)
  return config


def is_chief() -> bool:
  return jax.process_index() == 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="ferjax train", epilog=OVERRIDES)
  add_experiment_flags(
      parser, "run directory (resumed if it holds checkpoints)")
  return parser


def _train(args: argparse.Namespace, extra: list[str]) -> int:
  config = experiment_config(args, extra)
  logging.getLogger("ferjax").info(
      "config %s%s", args.config, f" with {' '.join(extra)}" if extra else "")
  from ferjax.train import loop
  from ferjax import metrics
  results = loop.train_and_evaluate(config, args.workdir,
                                    argv=["ferjax", *sys.argv[1:]])
  from ferjax.run.run_dir import RunDir
  # Every process opens the checkpoints: Orbax synchronises them.
  step, by, best = RunDir(args.workdir).best_checkpoint()
  if not is_chief():
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


def main(argv: Sequence[str]) -> int:
  args, extra = build_parser().parse_known_args(argv)
  return commands.reporting_errors("train", lambda: _train(args, extra))
