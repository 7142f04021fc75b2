"""ImageNet GoogLeNet fine-tuned on FER2013 (the review's section 4.4 recipe).

  ferjax convert torchvision googlenet-1378be20.pth runs/imagenet_googlenet
  ferjax train --config \
      experiments/fer2013_googlenet_finetune.py:source=runs/imagenet_googlenet \
      --config.input.manual_dir=~/Downloads/fer2013 --workdir runs/fer2013_googlenet_ft

The network is torchvision's GoogLeNet (``googlenet_tv``: BatchNorm, the
ImageNet weights' own architecture, not the paper's ``googlenet``), started
from the converted run (``config.init_from``): every layer is copied except
the 1000-way classifiers, which are re-initialised for FER2013's 7 classes.
The 48x48 grey faces are augmented at 48x48 (resized crops, flips,
rotation), then tiled to RGB and resized to the 224x224 the weights were
trained at, and normalised as (x - 0.5) / 0.5, which is torchvision's
``transform_input`` for these weights (the converted run's mean and std).
SGD with Nesterov momentum at 1e-3 (the new classifiers at 10x), weight
decay 1e-4, one warm-up epoch then cosine decay, batch 64, auxiliary heads
at 0.3. Arguments: ``source`` (required), ``epochs``, ``runlocal`` (one
epoch on 256 images).

Expected: a GPU job. At 224x224 a GoogLeNet step costs about 20x the 48x48
one (3 GFLOPs per image forward), i.e. hours per epoch on the 2-core CPU
development machine; no accuracy has been measured (the ImageNet file is not
on the project's machines and nothing downloads it at run time).
"""

import ml_collections

from ferjax import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, source="", epochs=10, runlocal=False)
  if not args.source:
    raise config_lib.ConfigError(
        "config argument 'source': the converted ImageNet GoogLeNet run is "
        "required, e.g. fer2013_googlenet_finetune.py:source=runs/"
        "imagenet_googlenet (from `ferjax convert torchvision "
        "googlenet-1378be20.pth runs/imagenet_googlenet`)")
  config = config_lib.base_config()
  config.num_epochs = 1 if args.runlocal else args.epochs
  config.batch_size = 64
  config.init_from.workdir = args.source
  config.init_from.checkpoint = "latest"

  config.input.dataset = "fer2013"
  config.input.builder_config = "original"
  config.input.train_split = "train[:256]" if args.runlocal else "train[:90%]"
  config.input.image_size = (224, 224)
  config.input.channels = 3
  config.input.mean = (0.5, 0.5, 0.5)
  config.input.std = (0.5, 0.5, 0.5)
  config.input.augment = ml_collections.ConfigDict(dict(
      crop=dict(mode="resize", scale=(0.8, 1.0)), flip=True, rotation=10.0))
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split="train[90%:]", tta="none"),
      public_test=dict(split="public_test", tta="none"),
      public_test_tencrop=dict(split="public_test", tta="ten_crop",
                               crop_size=(40, 40))))

  config.model.name = "googlenet_tv"
  config.loss.aux_weight = 0.3

  config.optimizer.learning_rate = 0.001
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 1.0
  config.optimizer.lr_multipliers = (("(fc|aux1/fc2|aux2/fc2)/.*", 10.0),)
  config.optimizer.plateau.metric = "val/accuracy"

  config.checkpoint.best_metric = "val/accuracy"
  config.parallel.cpu_devices = 2
  return config
