"""``ferjax export``: a run reduced to one checkpoint's model variables."""

import argparse
import os
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax import config as config_lib
from ferjax.commands import run_dirs


def build_parser() -> argparse.ArgumentParser:
  export = argparse.ArgumentParser(
      prog="ferjax export",
      description="Writes OUT: the run's config, manifest and metrics and "
      "one checkpoint without optimizer state, which predict, eval and "
      "init_from read like the run.")
  export.add_argument("--workdir", type=os.path.expanduser,
                      help="run directory written by 'ferjax train'")
  run_dirs.add_pretrained(export)
  export.add_argument("--out", required=True, type=os.path.expanduser,
                      help="new directory to create")
  export.add_argument("--checkpoint", default="best",
                      help="best, latest or a step number")
  return export


def _export(args: argparse.Namespace, extra: list[str]) -> int:
  if extra:
    raise config_lib.ConfigError(f"unrecognised arguments: {' '.join(extra)}")
  from ferjax.run.run_dir import export_variables
  workdirs = run_dirs.from_args(args)
  if len(workdirs) > 1:
    raise config_lib.ConfigError("export: one run, --workdir or --pretrained")
  args.workdir = workdirs[0]
  run_dirs.refuse_sweeps(workdirs)
  out = export_variables(args.workdir, args.out, checkpoint=args.checkpoint,
                         argv=["ferjax", *sys.argv[1:]])
  print(f"exported {args.workdir} ({args.checkpoint} checkpoint) to {out}")
  return 0


def main(argv: Sequence[str]) -> int:
  args, extra = build_parser().parse_known_args(argv)
  return commands.reporting_errors("export", lambda: _export(args, extra))
