"""Quickstart: LeNet-5 on synthetic_fer, the dataset that needs no download.

Run (README's first command does the install too):

  ferjax train --config experiments/quickstart.py --workdir runs/quickstart

Expected on a 2-core CPU machine: about 2 minutes including building the
dataset once, test accuracy >= 0.90 (see experiments/RESULTS.md for the
measured figure). ``:runlocal`` trains 1 epoch on a slice for smoke tests.
"""

import ml_collections

from ferjax import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, runlocal=False)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_epochs = 1 if args.runlocal else 8
  config.batch_size = 128
  config.log_every_steps = 50
  config.eval_every_epochs = 1

  # Input: 48x48 grey faces, shown to LeNet-5 at the review's 32x32x3.
  config.input = ml_collections.ConfigDict()
  config.input.dataset = "synthetic_fer"
  config.input.builder_config = None
  config.input.data_dir = None
  config.input.manual_dir = None
  config.input.train_split = "train"
  config.input.image_size = (32, 32)
  config.input.channels = 3
  config.input.mean = None
  config.input.std = None
  config.input.augment = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  config.model.name = "lenet5"
  config.model.dtype = "float32"

  config.loss = ml_collections.ConfigDict()
  config.loss.label_smoothing = 0.0
  config.loss.class_weights = None
  config.loss.aux_weight = 0.3

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.grad_clip_norm = None
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 0.5
  config.optimizer.boundaries_epochs = ()
  config.optimizer.decay_factor = 0.1
  config.optimizer.plateau = ml_collections.ConfigDict(dict(
      metric="test/accuracy", mode="max", factor=0.75, patience=5,
      min_scale=1e-3))

  # Evaluations: each its own split and test-time preprocessing.
  config.evals = ml_collections.ConfigDict()
  config.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_steps = 200
  config.checkpoint.keep = 2
  config.checkpoint.best_metric = "test/accuracy"
  config.checkpoint.best_mode = "max"

  config.parallel = ml_collections.ConfigDict()
  config.parallel.backend = "shard_map"
  config.parallel.cpu_devices = 2
  return config
