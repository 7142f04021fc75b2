"""``ferjax crossval``: train every fold of a kfold experiment; mean and std."""

import argparse
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax.commands import train as train_command


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="ferjax crossval",
                                   epilog=train_command.OVERRIDES)
  train_command.add_experiment_flags(parser, "folds train in WORKDIR/fold_<i>")
  return parser


def _crossval(args: argparse.Namespace, extra: list[str]) -> int:
  config = train_command.experiment_config(args, extra)
  from ferjax.train import crossval
  summary = crossval.run_folds(config, args.workdir,
                               argv=["ferjax", *sys.argv[1:]])
  if not train_command.is_chief():
    return 0
  for name, m in summary["metrics"].items():
    print(f"{name}: {m['mean']:.4f} +- {m['std']:.4f} over "
          f"{summary['folds']} folds")
  return 0


def main(argv: Sequence[str]) -> int:
  args, extra = build_parser().parse_known_args(argv)
  return commands.reporting_errors("crossval", lambda: _crossval(args, extra))
