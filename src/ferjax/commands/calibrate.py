"""``ferjax calibrate``: fit a checkpoint's softmax temperature, store it."""

import argparse
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from ferjax import atomic
from ferjax import commands
from ferjax import compilation_cache
from ferjax import config as config_lib
from ferjax.commands import run_dirs


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ferjax calibrate",
      description="Fits one temperature T (softmax(logits / T), by NLL) on "
      "the run's validation split and stores it in the run with a "
      "reliability diagram; 'ferjax eval' and 'ferjax predict' then report "
      "calibrated scores for that checkpoint.")
  parser.add_argument("--workdir", type=os.path.expanduser,
                      help="run directory written by 'ferjax train'")
  run_dirs.add_pretrained(parser)
  parser.add_argument("--out", type=os.path.expanduser, metavar="DIR",
                      help="calibrate a copy instead: the run reduced to the "
                      "checkpoint (as 'ferjax export' writes) in this new "
                      "directory; required with --pretrained, whose "
                      "directory is part of the installed package")
  parser.add_argument("--checkpoint", default="best",
                      help="best (default), latest or a step number")
  parser.add_argument("--split", default=None,
                      help="split to fit T on (default: that of the eval "
                      "which selects the best checkpoint, the validation "
                      "split)")
  run_dirs.add_dataset_dirs(parser)
  return parser


def _calibrate(args: argparse.Namespace, extra: list[str]) -> int:
  if extra:
    raise config_lib.ConfigError(f"unrecognised arguments: {' '.join(extra)}")
  if args.workdir and args.pretrained is not None:
    raise config_lib.ConfigError(
        "calibrate: one run, --workdir or --pretrained")
  (workdir,) = run_dirs.from_args(args)
  run_dirs.refuse_sweeps([workdir])
  if args.pretrained is not None and args.out is None:
    raise config_lib.ConfigError(
        f"calibrate --pretrained needs --out DIR: the bundled model "
        f"({workdir}) is part of the installed package and is never "
        "written; --out gets a calibrated copy, which 'ferjax eval' and "
        "'ferjax predict --workdir DIR' then use")
  from ferjax.run.run_dir import RunDir, export_variables
  config = RunDir(workdir).read_config()
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  compilation_cache.enable(compilation_cache.default_dir())
  if args.out is None:
    record = _fit(args, workdir, args.checkpoint)
  else:
    out = pathlib.Path(args.out)
    if out.is_symlink() or out.exists() and (
        not out.is_dir() or any(out.iterdir())):
      raise FileExistsError(f"{out}: already exists and is not an empty "
                            "directory; calibrate --out never overwrites, "
                            "choose a new DIR")
    # The copy appears calibrated or not at all: a kill leaves no
    # uncalibrated copy to block the retry.
    with atomic.directory(out) as tmp:
      export_variables(workdir, tmp, checkpoint=args.checkpoint,
                       argv=["ferjax", *sys.argv[1:]])
      # The copy holds that one checkpoint only.
      record = _fit(args, str(tmp), "latest")
    workdir = str(out)
  diagram = RunDir(workdir).reliability_diagram_path
  print(f"{workdir}: step {record['step']}, temperature "
        f"{record['temperature']:.4f} fitted on {record['split']} "
        f"({record['num_examples']} examples)\n"
        f"  nll  {record['nll']:.4f} -> {record['nll_calibrated']:.4f}\n"
        f"  ece{record['ece_bins']} {record['ece']:.4f} -> "
        f"{record['ece_calibrated']:.4f}\n"
        f"reliability diagram: {diagram}")
  return 0


def _fit(args: argparse.Namespace, workdir: str,
         checkpoint: str) -> dict[str, Any]:
  """Fits and stores the temperature of ``workdir``'s checkpoint and draws
  its reliability diagram; returns the record."""
  from ferjax.evaluate import calibrate, calibration_plots
  from ferjax.run.run_dir import RunDir
  record = calibrate.calibrate_run(
      workdir, split=args.split, checkpoint=checkpoint,
      data_dir=args.data_dir, manual_dir=args.manual_dir)
  calibration_plots.write_reliability_diagram(
      record, RunDir(workdir).reliability_diagram_path)
  return record


def main(argv: Sequence[str]) -> int:
  args, extra = build_parser().parse_known_args(
      run_dirs.pretrained_apart(argv))
  return commands.reporting_errors("calibrate",
                                   lambda: _calibrate(args, extra))
