"""VGG on FER2013 with the best published single-VGG recipe.

  ferjax train --config experiments/fer2013_vgg.py:depth=16,bn=True \
      --config.input.manual_dir=~/Downloads/fer2013 --workdir runs/fer2013_vgg16

Recipe after Khaireddin & Chen 2021 (73.28% on FER2013's PublicTest with
ten-crop, with their own VGG variant; their code, usef-kh/fer
``data/fer2013.py``, validates on PrivateTest and reports PublicTest): SGD
lr 0.01, Nesterov momentum 0.9, weight decay 1e-4, reduce-on-plateau x0.75
after 5 epochs without validation improvement, batch 64, 48x48 grey input
with random resized crops, flips, rotation and random erasing, ten-crop
test-time augmentation (40x40 crops). Not carried over (see the issue 20
note in experiments/RESULTS.md): their network (8 convolutions in 4 stages,
dropout 0.2, PyTorch's default initialisation), their training on all ten
40x40 crops of every image (640 crops per step of 64 images), crop scale
up to 1.2, random translation, rotation with probability 0.5, erasing of
2-33% of the area, and mixed precision. Arguments:
``depth`` (11, 13, 16, 19), ``bn`` (BatchNorm), ``epochs``, ``runlocal``.
Expected: the recipe's paper reports 73.28% with its own VGG variant on a
GPU; ferjax has not trained this config to the end yet (it needs a GPU).
On the 2-core CPU development machine ``depth=11,bn=True`` reaches 39.4%
PublicTest accuracy after one epoch, 44.6% after two and 46.4% after three,
about 10 minutes an epoch with its evaluations on the idle machine
(experiments/RESULTS.md, issue 20). ``:runlocal`` is a one-epoch smoke test
on 2,048 images.
"""

import ml_collections

from ferjax import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, depth=16, bn=True, epochs=100,
                              runlocal=False)
  if args.depth not in (11, 13, 16, 19):
    raise config_lib.ConfigError(
        f"config argument 'depth': expected 11, 13, 16 or 19, got {args.depth}")
  config = config_lib.base_config()
  config.num_epochs = 1 if args.runlocal else args.epochs
  config.batch_size = 64

  config.input.dataset = "fer2013"
  config.input.builder_config = "original"
  config.input.train_split = "train[:2048]" if args.runlocal else "train[:90%]"
  config.input.image_size = (48, 48)
  config.input.channels = 1
  config.input.augment = ml_collections.ConfigDict(dict(
      crop=dict(mode="resize", scale=(0.8, 1.0)), flip=True, rotation=10.0,
      erasing=0.5))
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split="train[90%:]", tta="none"),
      public_test=dict(split="public_test", tta="none"),
      # Ten forward passes per face: every 10 epochs and at the end.
      public_test_tencrop=dict(split="public_test", tta="ten_crop",
                               crop_size=(40, 40), every_epochs=10)))

  config.model.name = f"vgg{args.depth}{'_bn' if args.bn else ''}"

  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = "plateau"
  config.optimizer.plateau.metric = "val/accuracy"
  config.optimizer.plateau.factor = 0.75
  config.optimizer.plateau.patience = 5

  config.checkpoint.best_metric = "val/accuracy"
  # 100 epochs: a save every 5th (each new best and the last always), not
  # 100 saves of VGG's 263 MB state; a crash loses at most 5 epochs.
  config.checkpoint.every_epochs = 5
  config.parallel.cpu_devices = 2
  return config
