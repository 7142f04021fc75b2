"""The review's four-family comparison on FER2013, at full scale: one sweep.

  ferjax sweep --config experiments/fer2013_review.py \
      --config.input.manual_dir=~/Downloads/fer2013 \
      --config.model.dtype=bfloat16 --workdir runs/fer2013_review
  ferjax report runs/fer2013_review

or, on one GPU, ``bash gpu/gpu_review.sh`` (the same command, with
the expected time per family printed first). Twelve trials: LeNet-5
(experiments/fer2013_lenet.py, 32x32x3, cosine schedule, 30 epochs),
AlexNet (fer2013_alexnet.py), VGG-11-BN (fer2013_vgg.py:depth=11,bn=True)
and GoogLeNet (fer2013_googlenet.py), the last three on 48x48x1 with the
VGG recipe's SGD and reduce-on-plateau for 100 epochs, each with seeds 0, 1
and 2, in run directories named ``<family>-seed<N>``. Each trial trains its
family's own experiment config, unchanged but for the seed: the trials are
``sweep.TrialSpec``s whose argument ``family=NAME`` ``get_config``
dispatches on. ``ferjax report`` then gives each family's mean and standard
deviation over the seeds (PublicTest single-crop and ten-crop, selected on
the validation slice).

Expected time per trial on one H200 in bfloat16 (gpu/review_budget.py,
printed by gpu_review.sh): XLA's measured forward FLOPs per image (LeNet-5
1.3 M at 32x32x3; AlexNet-BN with its stride-2 stem 281 M, VGG-11-BN
615 M, GoogLeNet-BN 484 M at 48x48x1), 3x that per training image, every
evaluation counted, at an assumed 50 effective TFLOP/s (5% of the H200's
dense bfloat16 peak: small convolutions at batch 64) plus an assumed 3 ms
per step: LeNet-5 about 1 minute, AlexNet 3.6, VGG-11-BN 4.6, GoogLeNet
4.2 minutes, the twelve trials under an hour plus each trial's start and compilation (about a minute).
These are assumptions, not measurements; a measured first epoch replaces
them. Expected result: not measured yet for the three larger families (the
VGG recipe's paper reports 73.28% PublicTest ten-crop accuracy with its own
VGG variant, fer2013_vgg.py); LeNet-5's recipe reaches PublicTest accuracy
about 0.50 (experiments/RESULTS.md).

Arguments: ``runlocal`` (every trial one epoch on 128 training images, 64
validation and 64 PublicTest images, ten-crop on 16, no learning-rate
warmup, so that every trial's steps train: a smoke test; measured
on the shared 2-core CPU, load average 6-9, per trial: LeNet-5 15 s, AlexNet
90 s, VGG-11-BN 40-50 s, GoogLeNet 2 minutes, mostly compilation; all
twelve 14 minutes: ``bash gpu/gpu_review.sh --runlocal``),
``seeds=N`` (seeds 0..N-1, default 3), ``family=NAME`` (``get_config``: the
family to build; ``get_sweep``: only that family).
"""

import pathlib

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep

_HERE = pathlib.Path(__file__).parent

# Each family's experiment file and argument: its published-style recipe.
FAMILIES: dict[str, tuple[str, str]] = {
    "lenet5": ("fer2013_lenet.py", ""),
    "alexnet": ("fer2013_alexnet.py", ""),
    "vgg11_bn": ("fer2013_vgg.py", "depth=11,bn=True"),
    "googlenet": ("fer2013_googlenet.py", ""),
}

# :runlocal sizes: training images, images of each evaluation, and of each
# ten-crop one (10 forward passes an image: AlexNet's 1.35 GFLOPs each make
# ten-crop the costliest part of a tiny trial on a CPU).
_RUNLOCAL_TRAIN = 128
_RUNLOCAL_EVAL = 64
_RUNLOCAL_TEN_CROP = 16


def _args(arg: str | None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, family="", runlocal=False, seeds=3)
  if args.family and args.family not in FAMILIES:
    raise config_lib.ConfigError(
        f"config argument 'family': expected one of {', '.join(FAMILIES)}, "
        f"got {args.family!r}")
  if args.seeds < 1:
    raise config_lib.ConfigError(
        f"config argument 'seeds': expected a positive integer, got "
        f"{args.seeds}")
  return args


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = _args(arg)
  if not args.family:
    raise config_lib.ConfigError(
        "config argument 'family' is needed (one of "
        f"{', '.join(FAMILIES)}), e.g. {pathlib.Path(__file__).name}:"
        "family=googlenet; `ferjax sweep` sets it for every trial")
  path, family_arg = FAMILIES[args.family]
  family_arg = ",".join(filter(None, [family_arg,
                                      "runlocal" if args.runlocal else ""]))
  config = config_lib.load_config(
      f"{_HERE / path}:{family_arg}" if family_arg else str(_HERE / path))
  if args.runlocal:
    config.num_epochs = 1
    # One epoch of a warmup is all warmup: LeNet-5's single step (batch 128)
    # would take learning rate 0 and never train.
    if config.optimizer.warmup_epochs:
      config.optimizer.warmup_epochs = 0.0
    config.input.train_split = f"train[:{_RUNLOCAL_TRAIN}]"
    for ev in config.evals.values():
      n = _RUNLOCAL_TEN_CROP if ev.tta == "ten_crop" else _RUNLOCAL_EVAL
      # The validation slice stays disjoint from the training images.
      ev.split = (f"train[-{n}:]" if ev.split.startswith("train")
                  else f"{ev.split}[:{n}]")
  return config


def get_sweep(arg: str | None = None) -> list[sweep.TrialSpec]:
  args = _args(arg)
  families = [args.family] if args.family else list(FAMILIES)
  return [sweep.TrialSpec(
      {"seed": seed},
      arg=f"family={family}" + (",runlocal" if args.runlocal else ""),
      name=f"{family}-seed{seed}")
          for family in families for seed in range(args.seeds)]
