"""VGG on CK+48, fine-tuned from a FER2013 run, over 10 subject folds.

  ferjax train --config experiments/fer2013_vgg.py:depth=16,bn=True \
      --config.input.manual_dir=~/Downloads/fer2013 \
      --workdir runs/fer2013_vgg16
  ferjax data prepare ck_plus --manual-dir /path/to/CK+48
  ferjax crossval --config \
      experiments/ckplus_vgg_finetune.py:source=runs/fer2013_vgg16,freeze=2 \
      --config.input.manual_dir=/path/to/CK+48 --workdir runs/ckplus_vgg16_ft

Every fold starts from the ``source`` run's best checkpoint
(``config.init_from``; the source is only read): all convolutions,
BatchNorm layers and the two hidden dense layers are copied, and the
classifier is re-initialised because CK+'s classes are not FER2013's. CK+48
crops are 48x48 grey like FER2013's, so the input is the source's and every
shape matches. ``depth`` and ``bn`` must be the source's (fer2013_vgg.py's
defaults: 16, True). SGD at a tenth of fer2013_vgg.py's rate, the new
classifier at 10x that, cosine decay; ``freeze=N`` keeps the first N of
the five convolution stages fixed, BatchNorm running statistics included
(``--config.optimizer.freeze_batch_stats=False`` lets those adapt to CK+). Folds, split seed and augmentation are ``ckplus_lenet.py``'s.
Arguments: ``source`` (required), ``depth``, ``bn``, ``freeze`` (0-5),
``epochs``, ``folds``, ``runlocal`` (3 folds of 2 epochs).

Expected: a GPU job. On the 2-core CPU development machine VGG-16-BN trains
at about 15 img/s at 48x48 (benchmarks/README.md), about a minute per fold
and epoch, so 10 folds x 30 epochs take about 5 hours. No CK+ accuracy is
measured: CK+ is not available on the project's machines (the LeNet-5
version's stand-in comparison is in experiments/RESULTS.md).
"""

import ml_collections

from ferjax import config as config_lib

# Convolutions per stage of VGG configurations A, B, D and E.
_STAGE_CONVS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2),
                16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, source="", depth=16, bn=True, freeze=0,
                              epochs=30, folds=10, runlocal=False)
  if not args.source:
    raise config_lib.ConfigError(
        "config argument 'source': the FER2013 run to fine-tune from is "
        "required, e.g. ckplus_vgg_finetune.py:source=runs/fer2013_vgg16")
  if args.depth not in _STAGE_CONVS:
    raise config_lib.ConfigError(
        f"config argument 'depth': expected 11, 13, 16 or 19, got {args.depth}")
  if not 0 <= args.freeze <= 5:
    raise config_lib.ConfigError(
        f"config argument 'freeze': expected 0 to 5 stages, got {args.freeze}")
  config = config_lib.base_config()
  config.num_epochs = 2 if args.runlocal else args.epochs
  config.batch_size = 32
  config.init_from.workdir = args.source
  config.init_from.checkpoint = "best"

  config.input.dataset = "ck_plus"
  config.input.protocol = "kfold"
  config.input.folds = 3 if args.runlocal else args.folds
  config.input.split_seed = 0
  config.input.train_split = "train"
  config.input.image_size = (48, 48)
  config.input.channels = 1
  config.input.augment = ml_collections.ConfigDict(dict(
      crop=dict(padding=4, mode="pad"), flip=True, rotation=10.0))

  config.model.name = f"vgg{args.depth}{'_bn' if args.bn else ''}"

  config.optimizer.learning_rate = 0.001
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 1.0
  config.optimizer.lr_multipliers = (("Dense_2/.*", 10.0),)
  frozen_convs = sum(_STAGE_CONVS[args.depth][:args.freeze])
  if frozen_convs:
    layers = "|".join(map(str, range(frozen_convs)))
    kinds = "Conv|BatchNorm" if args.bn else "Conv"
    config.optimizer.frozen = (f"({kinds})_({layers})/.*",)

  config.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))
  config.checkpoint.best_metric = "test/accuracy"
  config.parallel.cpu_devices = 2
  return config
