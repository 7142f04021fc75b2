"""``ferjax report DIR...``: tables and plots over runs and sweeps."""

import argparse
import os
import pathlib
from collections.abc import Sequence

from ferjax import commands
from ferjax.experiment.report import write_report


def main(argv: Sequence[str] | None = None) -> int:
  """``ferjax report DIR... [--out DIR] [--eval NAME] [--step N]``."""
  parser = argparse.ArgumentParser(
      prog="ferjax report",
      description="Tabulate and plot the runs under one or more directories "
      "(found recursively): report.md, report.csv, plots/.")
  parser.add_argument("dirs", nargs="+", metavar="DIR", type=os.path.expanduser,
                      help="run or sweep directories, searched for runs")
  parser.add_argument("--out", type=os.path.expanduser,
                      help="where to write (default: the first DIR)")
  parser.add_argument("--eval", dest="eval_name",
                      help="evaluation to plot as confusion matrices and "
                      "per-class accuracy (default: the one that selects "
                      "each run's best checkpoint)")
  parser.add_argument("--step", type=int,
                      help="step of that evaluation (default: the last)")
  parser.add_argument(
      "--columns", type=lambda text: [c for c in text.split(",") if c],
      metavar="COLUMN,...",
      help="config fields and metric columns of the tables, in this order, "
      "e.g. model.name,public_test/accuracy_final,public_test/macro_f1_final"
      " (default: the fields that differ between the runs, a sweep's axes in "
      "report.md, and every evaluation's final and best accuracy and macro "
      "F1)")
  args = parser.parse_args(argv)

  def report() -> int:
    tables = write_report(args.dirs, args.out, eval_name=args.eval_name,
                          step=args.step, columns=args.columns)
    print(tables)
    print(f"wrote {pathlib.Path(args.out or args.dirs[0]) / 'report.md'}")
    return 0

  return commands.reporting_errors("report", report)
