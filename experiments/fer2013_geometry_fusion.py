"""The face's geometry fused early into LeNet-5 on FER2013.

  ferjax data prepare fer2013 --manual-dir ~/Downloads/fer2013 --landmarks
  ferjax train --config experiments/fer2013_geometry_fusion.py:fusion=geometry \\
      --config.input.manual_dir=~/Downloads/fer2013 --workdir runs/lenet_geometry

Each face's geometric descriptor (the twelve action-unit measures and the
Procrustes-aligned FaceMesh mesh of ``landmarks.action_units``, read from
the landmark cache beside the prepared data and standardised by the
training split's statistics: the geometry_svm family's features) joins
LeNet-5's penultimate features before its classifier (``model.fusion``,
features ``('geometry',)``, mode ``early``; README "Geometric path"), and
the whole is trained end to end by the recipe of fer2013_lenet.py (10
epochs here, as fer2013_fusion.py's study). A flipped training image gets
its mirror image's descriptor. Config arguments: ``fusion=none|geometry``,
``epochs=N`` (default 10), ``runlocal`` (2 epochs on 2,048 faces).

The study of experiments/RESULTS.md (LeNet-5 alone and with geometry, 3
seeds each; 9-13 minutes per trial measured on a 2-core CPU running two
trials beside another training, of which 1-2 minutes computing the
descriptors before the first step) and its table, with the RBF SVM alone
and the late fusion of ``ferjax fuse`` beside it:

  ferjax sweep --config experiments/fer2013_geometry_fusion.py \\
      --config.input.manual_dir=~/Downloads/fer2013 \\
      --workdir runs/fer2013_geometry_fusion --concurrent-trials 2 \\
      --config.parallel.cpu_devices=1
  ferjax report runs/fer2013_geometry_fusion --eval public_test

Expected (measured, experiments/RESULTS.md "The geometric path"),
PublicTest single crop at the validation-selected checkpoint: LeNet-5
0.467 ± 0.006, with geometry early 0.489 ± 0.012 (+2.2 points on average,
higher on every seed), while the late fusion with the RBF SVM (0.528 ±
0.001) and the SVM alone (0.512) do better.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep

_HERE = pathlib.Path(__file__).parent
# The studied variants: model.fusion.features (mode early).
VARIANTS = ((), ("geometry",))
SEEDS = (0, 1, 2)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, fusion="none", epochs=10, runlocal=False)
  recipe = f"epochs={args.epochs}" + (",runlocal" if args.runlocal else "")
  config = config_lib.load_config(f"{_HERE / 'fer2013_lenet.py'}:{recipe}")
  if args.fusion not in ("none", "geometry"):
    raise ValueError(f"fusion={args.fusion!r}: expected none or geometry")
  if args.fusion == "geometry":
    config.model.fusion.features = ("geometry",)
    config.model.fusion.mode = "early"
  return config


def get_sweep(arg: str | None = None) -> list[dict]:
  """Both variants with every seed of ``SEEDS``; seeds vary slowest."""
  del arg  # The same trials whatever the config argument.
  variants = [{"model.fusion.features": feats,
               "model.fusion.mode": "early" if feats else "late"}
              for feats in VARIANTS]
  return sweep.product(sweep.axis("seed", SEEDS), variants)
