"""``ferjax convert torchvision PTH OUT``: torchvision weights as a run."""

import argparse
import os
from collections.abc import Sequence

from ferjax import commands
from ferjax.convert.torchvision import convert


def main(argv: Sequence[str]) -> int:
  """Runs `ferjax convert torchvision PTH OUT`; 2 on unusable input."""
  parser = argparse.ArgumentParser(
      prog="ferjax convert torchvision",
      description="Turn a torchvision VGG-11/13/16/19(_bn), AlexNet or "
      "GoogLeNet state dict (.pth) into a ferjax run directory for "
      "config.init_from.workdir (AlexNet and GoogLeNet as alexnet_tv and "
      "googlenet_tv).")
  parser.add_argument("pth", type=os.path.expanduser,
                      help="torchvision state dict, e.g. "
                      "vgg16_bn-b566c6a1.pth")
  parser.add_argument("out", type=os.path.expanduser,
                      help="new run directory to create")
  args = parser.parse_args(argv)
  return commands.reporting_errors(
      "convert torchvision", lambda: _convert(args, argv),
      errors=(ImportError, FileExistsError))


def _convert(args: argparse.Namespace, argv: Sequence[str]) -> int:
  out = convert(args.pth, args.out,
                argv=["ferjax", "convert", "torchvision", *argv])
  print(f"wrote {out}")
  return 0
