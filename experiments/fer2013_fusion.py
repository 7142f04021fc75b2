"""LBP and Gabor features fused with a CNN on FER2013 (LeNet-5 by default).

  ferjax train --config experiments/fer2013_fusion.py:features=lbp,mode=late \
      --config.input.manual_dir=~/Downloads/fer2013 --workdir runs/lbp_late

Config arguments: ``features=none|lbp|gabor|lbp+gabor``, ``mode=early|late``
(``model.fusion``, see README "Hand-crafted features and fusion"),
``model=`` any registered CNN (lenet5 takes the recipe of fer2013_lenet.py,
the others that of fer2013_vgg.py, which alexnet and googlenet share) or
``lbp_linear`` (the LBP histograms and a linear classifier, no CNN),
``epochs=N`` (default 10, as the reproducibility study) and ``runlocal``.

The study of experiments/RESULTS.md: LeNet-5 alone, + LBP early, + LBP late,
+ Gabor early, + LBP+Gabor late, and LBP + linear alone, 3 seeds each.
Expected (measured, 2-core CPU, 4-19 minutes per LeNet-5 trial, under 2 for
``lbp_linear``): PublicTest accuracy at the final step 0.468 ± 0.004 for
LeNet-5 alone, 0.450 with LBP early, 0.460-0.464 for the other fusions and
0.353 for LBP + linear; fusion does not help LeNet-5 here:

  ferjax sweep --config experiments/fer2013_fusion.py:epochs=10 \
      --config.input.manual_dir=~/Downloads/fer2013 \
      --workdir runs/fer2013_fusion --concurrent-trials 2 \
      --config.parallel.cpu_devices=1

and its table (one row per variant: mean ± sample std over the seeds, at
the final step; the "Over seeds" section of what it prints):

  COLS=public_test/accuracy_final,public_test/macro_f1_final
  COLS=$COLS,public_test_tencrop/accuracy_final
  COLS=$COLS,public_test_tencrop/macro_f1_final
  ferjax report runs/fer2013_fusion --out runs/fer2013_fusion_report \
      --eval public_test --columns $COLS
"""

import pathlib

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep

_HERE = pathlib.Path(__file__).parent
# The studied variants: (model, features, mode); "" means no fusion.
VARIANTS = (
    ("lenet5", (), "late"),
    ("lenet5", ("lbp",), "early"),
    ("lenet5", ("lbp",), "late"),
    ("lenet5", ("gabor",), "early"),
    ("lenet5", ("lbp", "gabor"), "late"),
    ("lbp_linear", (), "late"),
)
SEEDS = (0, 1, 2)


def _recipe(model: str, epochs: int, runlocal: bool) -> str:
  arg = f"epochs={epochs}" + (",runlocal" if runlocal else "")
  if model in ("lenet5", "lbp_linear"):
    return f"{_HERE / 'fer2013_lenet.py'}:{arg}"
  return f"{_HERE / 'fer2013_vgg.py'}:{arg}"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, model="lenet5", features="none",
                              mode="late", epochs=10, runlocal=False)
  config = config_lib.load_config(
      _recipe(args.model, args.epochs, args.runlocal))
  config.model.name = args.model
  if args.features != "none":
    config.model.fusion.features = tuple(args.features.split("+"))
  config.model.fusion.mode = args.mode
  if tuple(config.input.image_size) == (32, 32):
    # LeNet's 32x32 input: a 4x4 grid keeps the classic 8x8-pixel cells (the
    # sweep's lbp_linear trials start from this default config too).
    config.model.fusion.lbp.grid = (4, 4)
    config.model.fusion.gabor.grid = (4, 4)
  return config


def get_sweep(arg: str | None = None) -> list[dict]:
  """Every variant of ``VARIANTS`` with every seed of ``SEEDS``.

  Seeds vary slowest, so an interrupted sweep has whole seeds of the table.
  """
  del arg  # The same trials whatever the config argument.
  variants = [{"model.name": model, "model.fusion.features": feats,
               "model.fusion.mode": mode} for model, feats, mode in VARIANTS]
  return sweep.product(sweep.axis("seed", SEEDS), variants)
