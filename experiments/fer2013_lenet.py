"""LeNet-5 on FER2013 as the review specifies it (32x32x3), with augmentation.

  ferjax data prepare fer2013 --manual-dir ~/Downloads/fer2013
  ferjax train --config experiments/fer2013_lenet.py \
      --config.input.manual_dir=~/Downloads/fer2013 --workdir runs/fer2013_lenet

Trains on the official Training split less a 10% validation slice (model
selection uses it, never PublicTest; so would the plateau schedule with
``--config.optimizer.schedule=plateau``; the default is cosine), and reports
PublicTest with and without ten-crop test-time augmentation. Expected on a
2-core CPU machine: about 15 minutes, PublicTest accuracy about 0.45-0.50
(measured figures and the 5-seed study in experiments/RESULTS.md). Config
arguments: ``runlocal`` (2 epochs on a slice), ``epochs=N``,
``protocol=review`` (the review's seeded stratified 70/30 split of
Training+PublicTest instead of the official splits).

The reproducibility study (5 seeds, see experiments/RESULTS.md):

  ferjax sweep --config experiments/fer2013_lenet.py:epochs=10 \
      --config.input.manual_dir=~/Downloads/fer2013 \
      --workdir runs/fer2013_lenet_seeds --concurrent-trials 2 \
      --config.parallel.cpu_devices=1
  ferjax report runs/fer2013_lenet_seeds
"""

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, runlocal=False, epochs=30,
                              protocol="official")
  config = config_lib.base_config()
  config.num_epochs = 2 if args.runlocal else args.epochs
  config.batch_size = 128

  config.input.dataset = "fer2013"
  config.input.builder_config = "original"
  config.input.image_size = (32, 32)
  config.input.channels = 3
  config.input.augment = ml_collections.ConfigDict(dict(
      crop=dict(padding=4, mode="pad"), flip=True, rotation=10.0,
      brightness=0.2, contrast=0.2))
  if args.protocol == "review":
    config.input.protocol = "review_70_30"
    config.input.pool_splits = ("train", "public_test")
    config.input.train_split = "train"
    config.evals = ml_collections.ConfigDict(dict(
        test=dict(split="test", tta="none"),
        test_tencrop=dict(split="test", tta="ten_crop", crop_size=(44, 44))))
    selection = "test/accuracy"
  else:
    config.input.train_split = "train[:90%]"
    config.evals = ml_collections.ConfigDict(dict(
        val=dict(split="train[90%:]", tta="none"),
        public_test=dict(split="public_test", tta="none"),
        public_test_tencrop=dict(split="public_test", tta="ten_crop",
                                 crop_size=(44, 44))))
    selection = "val/accuracy"
  if args.runlocal and args.protocol != "review":
    config.input.train_split = "train[:2048]"

  config.model.name = "lenet5"

  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 1.0
  config.optimizer.plateau.metric = selection

  config.checkpoint.best_metric = selection
  config.parallel.cpu_devices = 2
  return config


def get_sweep(arg: str | None = None) -> list[dict]:
  del arg  # Seeds are swept the same way for every variant.
  return sweep.product(sweep.axis("seed", [0, 1, 2, 3, 4]))
