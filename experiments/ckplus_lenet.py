"""LeNet-5 on CK+48 with 10 subject-grouped folds (no person in both sides).

  ferjax data prepare ck_plus --manual-dir /path/to/CK+48
  ferjax crossval --config experiments/ckplus_lenet.py \
      --config.input.manual_dir=/path/to/CK+48 --workdir runs/ckplus_lenet

CK+ is not distributed with ferjax (request it from its authors; the CK+48
crops are the common layout: ``<class>/S<subject>_<sequence>_<frame>.png``).
Prints each metric's mean and std over the folds and writes
``crossval.json``. Expected on a 2-core CPU: about 1 minute per fold (981
images); accuracy is not measured here because CK+ is not available on the
project's machines. ``:runlocal`` runs 3 folds of 2 epochs.
"""

import ml_collections

from ferjax import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, runlocal=False, folds=10)
  config = config_lib.base_config()
  config.num_epochs = 2 if args.runlocal else 40
  config.batch_size = 32

  config.input.dataset = "ck_plus"
  config.input.protocol = "kfold"
  config.input.folds = 3 if args.runlocal else args.folds
  config.input.split_seed = 0
  config.input.train_split = "train"
  config.input.image_size = (32, 32)
  config.input.channels = 3
  config.input.augment = ml_collections.ConfigDict(dict(
      crop=dict(padding=4, mode="pad"), flip=True, rotation=10.0))

  config.model.name = "lenet5"
  config.optimizer.learning_rate = 0.01
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 2.0

  config.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))
  config.checkpoint.best_metric = "test/accuracy"
  config.parallel.cpu_devices = 2
  return config
