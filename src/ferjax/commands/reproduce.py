"""``ferjax reproduce RUN_DIR``: train a run again and compare."""

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax import config as config_lib
from ferjax.experiment.reproduce import _new_workdir, format_summary, reproduce


def main(argv: Sequence[str] | None = None) -> int:
  """``ferjax reproduce RUN_DIR [--workdir NEW_DIR]``: 0 when identical."""
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(
      prog="ferjax reproduce",
      description="Train a finished run again from its saved config into a "
      "new directory and compare every metric event. Exit status 0 when "
      "identical, 1 when not.",
      epilog="--config.input.data_dir=... (or parallel.*, input.manual_dir) "
      "points the reproduction at another machine's data.")
  parser.add_argument("run_dir", metavar="RUN_DIR", type=os.path.expanduser,
                      help="a finished run directory to train again")
  parser.add_argument("--workdir", type=os.path.expanduser,
                      help="new run directory (default: "
                      "RUN_DIR.reproduce, or SWEEP.reproduce/TRIAL for a "
                      "sweep's trial, numbered if taken)")
  args, extra = parser.parse_known_args(argv)
  return commands.reporting_errors(
      "reproduce", lambda: _reproduce(args, extra, argv),
      errors=(FileExistsError,))


def _reproduce(args: argparse.Namespace, extra: list[str],
               argv: list[str]) -> int:
  run_dir = pathlib.Path(args.run_dir)
  overrides = config_lib.split_override_args(extra)
  workdir = pathlib.Path(args.workdir) if args.workdir else _new_workdir(
      run_dir)
  print(f"reproducing {run_dir} in {workdir}", flush=True)
  comparison = reproduce(run_dir, workdir, overrides=overrides,
                         argv=["ferjax", "reproduce", *argv])
  print(format_summary(comparison))
  return 0 if comparison.identical else 1
