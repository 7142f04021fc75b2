"""``ferjax fuse``: late fusion of a CNN run and a geometric run."""

import argparse
import os
from collections.abc import Sequence

from ferjax import commands
from ferjax import finite_json
from ferjax.commands import run_dirs


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ferjax fuse",
      description="Late fusion: a CNN run's log-softmax plus w times a "
      "geometric run's SVM scores, w fitted on --validation, reported on "
      "--split beside each run alone.")
  parser.add_argument("--workdir", type=os.path.expanduser,
                      help="the CNN run")
  run_dirs.add_pretrained(parser)
  parser.add_argument("--geometry", required=True, type=os.path.expanduser,
                      metavar="DIR", help="the geometric run "
                      "(model geometry_svm)")
  parser.add_argument("--validation", required=True, metavar="SPLIT",
                      help="where w is fitted, e.g. 'train[90%%:]'")
  parser.add_argument("--split", required=True, help="where it is reported")
  parser.add_argument("--checkpoint", default="best",
                      help="best | latest | STEP, of both runs")
  parser.add_argument("--json", action="store_true",
                      help="print the full result as JSON")
  run_dirs.add_dataset_dirs(parser)
  return parser


def _fuse(args: argparse.Namespace) -> int:
  (cnn,) = run_dirs.from_args(args)
  from ferjax.run.run_dir import RunDir
  from ferjax import metrics
  from ferjax.evaluate import late_fusion
  class_names = tuple(RunDir(cnn).dataset()["class_names"])
  result = late_fusion.fuse_runs(
      cnn, args.geometry, validation=args.validation, test=args.split,
      class_names=class_names, checkpoint=args.checkpoint,
      data_dir=args.data_dir, manual_dir=args.manual_dir)
  if args.json:
    print(finite_json.dumps(result))
    return 0
  print(f"late fusion on {args.split}: w = {result['weight']:.4g} (fitted "
        f"on {args.validation})")
  for name in ("cnn", "geometry", "late_fusion"):
    shown = " ".join(f"{m}={result[name][m]:.4f}"
                     for m in (*metrics.HEADLINE, "loss"))
    print(f"  {name}: {shown}")
  return 0


def main(argv: Sequence[str]) -> int:
  args = build_parser().parse_args(run_dirs.pretrained_apart(argv))
  return commands.reporting_errors("fuse", lambda: _fuse(args))
