"""``ferjax export``: a run reduced to one checkpoint's model variables, or its
model as one ONNX or StableHLO file."""

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax import config as config_lib
from ferjax.commands import run_dirs

# The run directory, and the files that the export package writes.
FORMATS = ("run", "onnx", "stablehlo")


def build_parser() -> argparse.ArgumentParser:
  export = argparse.ArgumentParser(
      prog="ferjax export",
      description="Writes OUT: with --format run (the default) the run's "
      "config, manifest and metrics and one checkpoint without optimizer "
      "state, which predict, eval and init_from read like the run; with "
      "--format onnx an ONNX model file, with --format stablehlo a "
      "serialized jax.export module (and OUT.json): the model from "
      "preprocessed images to logits, any batch size, the whole recipe from "
      "an image and a face's box to calibrated probabilities (crop, colour, "
      "resize, normalisation, labels, temperature) in its metadata "
      "(ferjax.recipe).")
  export.add_argument("--workdir", type=os.path.expanduser,
                      help="run directory written by 'ferjax train'")
  run_dirs.add_pretrained(export)
  export.add_argument("--out", required=True, type=os.path.expanduser,
                      help="new directory (--format run) or file to create")
  export.add_argument("--format", default="run",
                      help="run (default), onnx (needs the onnx extra: pip "
                      "install 'ferjax[onnx]') or stablehlo")
  export.add_argument("--checkpoint", default="best",
                      help="best, latest or a step number")
  export.add_argument("--preprocess-in-graph", action="store_true",
                      help="onnx, stablehlo: the model from uint8 face crops "
                      "(the dataset's image shape) to calibrated "
                      "probabilities, the resize, channels, normalisation "
                      "and temperature inside it")
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
  if args.format not in FORMATS:
    raise config_lib.ConfigError(
        f"--format: unknown format {args.format!r}; expected one of "
        f"{', '.join(FORMATS)}")
  if args.format != "run":
    return _export_file(args)
  if args.preprocess_in_graph:
    raise config_lib.ConfigError(
        "--preprocess-in-graph: for --format onnx or stablehlo; a run "
        "directory keeps its preprocessing in its config")
  out = export_variables(args.workdir, args.out, checkpoint=args.checkpoint,
                         argv=["ferjax", *sys.argv[1:]])
  print(f"exported {args.workdir} ({args.checkpoint} checkpoint) to {out}")
  return 0


def _export_file(args: argparse.Namespace) -> int:
  from ferjax.export import portable
  if args.format == "onnx":
    if importlib.util.find_spec("onnx") is None:
      raise config_lib.ConfigError(
          "--format onnx needs the onnx package: pip install 'ferjax[onnx]'")
    write = portable.write_onnx
  else:
    write = portable.write_stablehlo
  out = write(args.workdir, args.out, checkpoint=args.checkpoint,
              preprocess_in_graph=args.preprocess_in_graph)
  print(f"exported {args.workdir} ({args.checkpoint} checkpoint) as "
        f"{args.format} to {out}")
  return 0


def main(argv: Sequence[str]) -> int:
  args, extra = build_parser().parse_known_args(
      run_dirs.pretrained_apart(argv))
  return commands.reporting_errors("export", lambda: _export(args, extra))
