"""Quickstart: LeNet-5 on synthetic_fer, the dataset that needs no download.

  ferjax train --config experiments/quickstart.py --workdir runs/quickstart

Expected on a 2-core CPU machine (no accelerator): about a minute including
building the dataset once, test accuracy about 0.97 (measured figures in
experiments/RESULTS.md). ``:runlocal`` trains one epoch as a smoke test.
"""

import ml_collections

from ferjax import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, runlocal=False)
  config = config_lib.base_config()
  config.num_epochs = 1 if args.runlocal else 8
  config.batch_size = 128

  # Input: 48x48 grey faces, shown to LeNet-5 at the review's 32x32x3.
  config.input.dataset = "synthetic_fer"
  config.input.image_size = (32, 32)
  config.input.channels = 3

  config.model.name = "lenet5"

  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 0.5

  config.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))
  config.checkpoint.every_steps = 200
  config.checkpoint.best_metric = "test/accuracy"

  config.parallel.cpu_devices = 2  # XLA:CPU uses about one core per device.
  return config
