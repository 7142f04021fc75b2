"""LBP and Gabor fusion on CK+48 with 10 subject-grouped folds (crossval).

  ferjax crossval --config experiments/ckplus_fusion.py:features=lbp,mode=late \
      --config.input.manual_dir=/path/to/CK+48 --workdir runs/ckplus_lbp_late

The recipe of ckplus_lenet.py (LeNet-5 at 32x32x3, 40 epochs) with
``model.fusion`` set by the arguments of fer2013_fusion.py:
``features=none|lbp|gabor|lbp+gabor``, ``mode=early|late``,
``model=lenet5|lbp_linear``; plus ``folds=N`` and ``runlocal``. CK+ is not
on the project's machines, so no accuracy is reported here.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib

_LENET = pathlib.Path(__file__).with_name("ckplus_lenet.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, model="lenet5", features="none",
                              mode="late", folds=10, runlocal=False)
  if args.model not in ("lenet5", "lbp_linear"):
    raise config_lib.ConfigError(
        f"config argument 'model': expected lenet5 or lbp_linear (the "
        f"ckplus_lenet.py recipe), got {args.model!r}")
  lenet_arg = f"folds={args.folds}" + (",runlocal" if args.runlocal else "")
  config = config_lib.load_config(f"{_LENET}:{lenet_arg}")
  config.model.name = args.model
  if args.features != "none":
    config.model.fusion.features = tuple(args.features.split("+"))
  config.model.fusion.mode = args.mode
  # 32x32 input: a 4x4 grid keeps the classic 8x8-pixel cells.
  config.model.fusion.lbp.grid = (4, 4)
  config.model.fusion.gabor.grid = (4, 4)
  return config
