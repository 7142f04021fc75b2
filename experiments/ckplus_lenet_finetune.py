"""LeNet-5 on CK+48, fine-tuned from a FER2013 run, over the same 10 folds.

  ferjax train --config experiments/fer2013_lenet.py \
      --config.input.manual_dir=~/Downloads/fer2013 \
      --workdir runs/fer2013_lenet
  ferjax data prepare ck_plus --manual-dir /path/to/CK+48
  ferjax crossval \
      --config experiments/ckplus_lenet_finetune.py:source=runs/fer2013_lenet \
      --config.input.manual_dir=/path/to/CK+48 --workdir runs/ckplus_lenet_ft

The protocol of ``ckplus_lenet.py`` (its config is loaded and changed only
below: same folds, epochs, augmentation and seed, so the two
cross-validations compare fold by fold), but every fold starts from the
``source`` run's best checkpoint (``config.init_from``; the source is only
read). Both convolutions and the hidden dense layer are copied; the
classifier is re-initialised because CK+'s classes are not FER2013's
(contempt replaces neutral). The learning rate is 10x lower than from
scratch except for the new classifier, which keeps the scratch rate.
Arguments: ``source`` (required), ``freeze=N`` (keep the first N of the two
convolutions fixed), ``runlocal`` (3 folds of 2 epochs), ``folds``.

Expected on a 2-core CPU: about 1 minute per fold, as ``ckplus_lenet.py``.
CK+ is not available on the project's machines, so no CK+ accuracy is
measured; experiments/RESULTS.md has the same comparison on a small slice of
FER2013 as a stand-in.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib

_FROM_SCRATCH = pathlib.Path(__file__).with_name("ckplus_lenet.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, source="", freeze=0, runlocal=False,
                              folds=10)
  if not args.source:
    raise config_lib.ConfigError(
        "config argument 'source': the FER2013 run to fine-tune from is "
        "required, e.g. ckplus_lenet_finetune.py:source=runs/fer2013_lenet")
  if args.freeze not in (0, 1, 2):
    raise config_lib.ConfigError(
        f"config argument 'freeze': expected 0, 1 or 2 convolutions, got "
        f"{args.freeze}")
  config = config_lib.load_config(
      f"{_FROM_SCRATCH}:runlocal={args.runlocal},folds={args.folds}")

  config.init_from.workdir = args.source
  config.init_from.checkpoint = "best"
  config.optimizer.learning_rate = 0.001
  config.optimizer.lr_multipliers = (("Dense_1/.*", 10.0),)
  config.optimizer.frozen = tuple(
      f"Conv_{i}/.*" for i in range(args.freeze))
  return config
