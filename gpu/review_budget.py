"""Expected GPU time per family of the review sweep, from measured FLOPs.

  python gpu/review_budget.py [--tflops 50] [--step-ms 3] [ARG]

For each family of experiments/fer2013_review.py (ARG: its config argument,
e.g. ``runlocal``), reads the trial's own config and counts the work of one
trial: every training step (forward and backward: 3 x the forward FLOPs of
an image) and every evaluation it runs (validation and PublicTest each
epoch, ten-crop's 10 forwards per image as often as the config says), with
XLA's measured forward FLOPs per image at the family's input shape
(``ferjax models``: ``models.summary.model_summary``). Time is that work at
``--tflops`` effective TFLOP/s plus ``--step-ms`` per step (train and eval
batches), the floor that kernel launches and the host set on small
networks. These two numbers are assumptions, not measurements: the defaults
are 10% of an H200's 989 dense bfloat16 TFLOP/s (small convolutions at
batch 64 on 48x48 images keep a GPU far from its peak) and 3 ms a step.
Replace them with a measured first epoch when one exists.

With ``runlocal`` (the CPU smoke test) FLOPs say nothing: compilation takes
most of a tiny trial's time, so the estimate is the measured CPU time per
trial instead (``RUNLOCAL_CPU_SECONDS``).
"""

import argparse
import math
import pathlib
import sys
import types
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds

from ferjax import config as config_lib
from ferjax.models import summary

REVIEW = pathlib.Path(__file__).resolve().parents[1] / "experiments" / (
    "fer2013_review.py")

# Measured seconds per :runlocal trial on the shared 2-core CPU (load
# average 6-9; experiments/fer2013_review.py): mostly compilation.
RUNLOCAL_CPU_SECONDS = {"lenet5": 19, "alexnet": 89, "vgg11_bn": 52,
                        "googlenet": 134}

# FER2013's official split sizes (../shared/data/fer2013/PROVENANCE.txt).
SPLIT_SIZES = {"train": 28_709, "public_test": 3_589}


def split_size(split: str) -> int:
  """Examples in a TFDS split string such as ``train[:90%]``."""
  instructions = tfds.core.ReadInstruction.from_spec(split).to_absolute(
      {k: types.SimpleNamespace(num_examples=n)
       for k, n in SPLIT_SIZES.items()})
  return sum((SPLIT_SIZES[i.splitname] if i.to is None else i.to)
             - (i.from_ or 0) for i in instructions)


def evaluations(every: int | None, epochs: int) -> int:
  """How often an eval with ``every_epochs=every`` runs in ``epochs``: each
  multiple of ``every`` and the last epoch."""
  if not every:
    return epochs
  return epochs // every + (epochs % every != 0)


def trial_cost(config: Any) -> dict[str, Any]:
  """FLOPs and steps of one trial of ``config``."""
  shape = (*config.input.image_size, config.input.channels)
  kwargs = dict(config.model.get("kwargs") or {})
  flops = summary.model_summary(config.model.name, shape, 7,
                                kwargs=kwargs)["flops"]
  train = split_size(config.input.train_split)
  steps_per_epoch = math.ceil(train / config.batch_size)
  total = 3 * flops * train * config.num_epochs
  steps = steps_per_epoch * config.num_epochs
  for ev in config.evals.values():
    crops = 10 if ev.tta == "ten_crop" else 1
    runs = evaluations(ev.get("every_epochs"), config.num_epochs)
    images = split_size(ev.split)
    total += flops * crops * images * runs
    steps += math.ceil(crops * images / config.batch_size) * runs
  return {"model": config.model.name, "input": "x".join(map(str, shape)),
          "mflops_per_image": flops / 1e6, "epochs": config.num_epochs,
          "train_images": train, "flops": total, "steps": steps}


def _runlocal_estimate(families: Sequence[str], seeds: int) -> int:
  """The CPU smoke test's expected time: measured seconds per trial."""
  print("CPU smoke test (runlocal): expected time per trial, measured on a "
        "2-core CPU (mostly compilation; GPU arithmetic does not apply)")
  print(f"{'family':<10} {'seconds':>8}")
  for family in families:
    print(f"{family:<10} {RUNLOCAL_CPU_SECONDS[family]:>8}")
  total = seeds * sum(RUNLOCAL_CPU_SECONDS[f] for f in families)
  print(f"whole smoke test ({seeds} seed(s), one trial at a time): about "
        f"{math.ceil(total / 60)} minutes on a 2-core CPU")
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("arg", nargs="?", default="",
                      help="config argument of the review sweep (runlocal)")
  parser.add_argument("--tflops", type=float, default=50.0,
                      help="assumed effective TFLOP/s (default 50)")
  parser.add_argument("--step-ms", type=float, default=3.0,
                      help="assumed time floor per step in ms (default 3)")
  args = parser.parse_args(argv)
  module, _ = config_lib.load_experiment(str(REVIEW))
  parsed = config_lib.parse_arg(args.arg, family="", runlocal=False, seeds=3)
  if parsed.runlocal:
    return _runlocal_estimate(module.FAMILIES, parsed.seeds)
  seeds = parsed.seeds
  print(f"expected time per trial at {args.tflops:g} effective TFLOP/s and "
        f"{args.step_ms:g} ms per step (assumed; see "
        "gpu/review_budget.py)")
  print(f"{'family':<10} {'model':<12} {'input':<8} {'MFLOPs':>8} "
        f"{'epochs':>6} {'PFLOPs':>8} {'steps':>8} {'minutes':>8}")
  total = 0.0
  for family in module.FAMILIES:
    arg = ",".join(filter(None, [f"family={family}", args.arg]))
    cost = trial_cost(config_lib.load_config(f"{REVIEW}:{arg}"))
    seconds = (cost["flops"] / (args.tflops * 1e12)
               + cost["steps"] * args.step_ms / 1e3)
    total += seconds * seeds
    print(f"{family:<10} {cost['model']:<12} {cost['input']:<8} "
          f"{cost['mflops_per_image']:>8.1f} {cost['epochs']:>6} "
          f"{cost['flops'] / 1e15:>8.2f} {cost['steps']:>8} "
          f"{seconds / 60:>8.1f}")
  print(f"whole sweep ({seeds} seeds, one trial at a time): "
        f"{total / 3600:.1f} hours")
  return 0


if __name__ == "__main__":
  sys.exit(main())
