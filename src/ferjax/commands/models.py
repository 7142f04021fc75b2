"""``ferjax models``: every registered model with parameters and FLOPs."""

import argparse
import sys
from typing import Any

from ferjax import commands
from ferjax import models
from ferjax.models.summary import (check_input_shape, format_models_table,
                                   model_summary)


def _parse_input_shape(text: str) -> tuple[int, int, int]:
  try:
    return check_input_shape(tuple(int(part) for part in text.split(",")))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected H,W,C as three positive integers (e.g. 48,48,1), "
        f"got {text!r}") from None


def _parse_fusion(text: str) -> dict[str, Any]:
  """``lbp+gabor:late`` -> ``config.model.fusion`` at its defaults."""
  from ferjax import config as config_lib  # Only when --fusion is given.
  feats, _, mode = text.partition(":")
  fusion = config_lib.base_config().model.fusion.to_dict()
  fusion.update(features=tuple(feats.split("+")), mode=mode or "late")
  bad = [f for f in fusion["features"] if f not in config_lib.FUSION_FEATURES]
  if bad or fusion["mode"] not in config_lib.FUSION_MODES:
    raise argparse.ArgumentTypeError(
        f"expected FEATURES:MODE with FEATURES from "
        f"{'+'.join(config_lib.FUSION_FEATURES)} joined by '+' and MODE one "
        f"of {', '.join(config_lib.FUSION_MODES)}, got {text!r}")
  return fusion


def main(argv: list[str] | None = None) -> int:
  """Prints one summary row per registered model; 1 if any model failed."""
  parser = argparse.ArgumentParser(
      prog="ferjax models",
      description="Parameters, FLOPs and activation memory of every model.")
  parser.add_argument("--input-shape", type=_parse_input_shape,
                      default=(48, 48, 1), metavar="H,W,C",
                      help="model input (default: FER2013's 48,48,1)")
  parser.add_argument("--num-classes", type=int, default=7, metavar="N",
                      help="classifier outputs (default: 7)")
  parser.add_argument(
      "--fusion", type=_parse_fusion, metavar="FEATURES:MODE",
      help="also show what model.fusion adds, at its default settings, "
      "e.g. lbp:late, gabor:early, lbp+gabor:late")
  args = parser.parse_args(argv)
  if args.num_classes < 1:
    parser.error(f"--num-classes: expected a positive integer, "
                 f"got {args.num_classes}")
  return commands.reporting_errors("models", lambda: _models(args))


def _models(args: argparse.Namespace) -> int:
  rows, failed = [], False
  for name in models.MODEL_NAMES:
    try:
      row = model_summary(name, args.input_shape, args.num_classes)
      if args.fusion is not None:
        row["fused"] = None if name in models.HANDCRAFTED_MODELS else (
            model_summary(name, args.input_shape, args.num_classes,
                          fusion=args.fusion))
      rows.append(row)
    except ValueError as e:  # The input is too small for this geometry.
      reason = str(e).removeprefix(f"{name}: ")
      rows.append({"name": name, "skipped": reason})
      # torchvision's own networks keep torchvision's minimum input sizes
      # (AlexNet 63x63): not fitting a FER-sized input is expected of them.
      if not name.endswith("_tv"):
        print(f"ferjax models: {name}: {reason}", file=sys.stderr)
        failed = True
  height, width, channels = args.input_shape
  print(f"input {height}x{width}x{channels}, {args.num_classes} classes"
        + (f", fusion {'+'.join(args.fusion['features'])} "
           f"{args.fusion['mode']}" if args.fusion else ""))
  print(format_models_table(rows))
  return 1 if failed else 0
