"""AlexNet on CK+48 with 10 subject-grouped folds: ckplus_lenet.py's protocol.

  ferjax crossval --config experiments/ckplus_alexnet.py \
      --config.input.manual_dir=/path/to/CK+48 --workdir runs/ckplus_alexnet

The same folds, augmentation and schedule as experiments/ckplus_lenet.py, at
48x48 grey input, with experiments/fer2013_alexnet.py's network:
``alexnet_bn`` (the paper's AlexNet without BatchNorm stays at the class
prior when trained from scratch at 48x48) and its stride-2 small-input
stem. CK+ is not available on
the project's machines, so no accuracy is measured here; trained from
scratch on ~900 images these large models are expected to trail fine-tuning
from a FER2013 run. ``:runlocal`` runs 3 folds of 2 epochs.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib

_LENET = pathlib.Path(__file__).with_name("ckplus_lenet.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = config_lib.load_config(f"{_LENET}:{arg}" if arg else str(_LENET))
  config.model.name = "alexnet_bn"
  config.model.kwargs = {"small_stride": 2}
  config.input.image_size = (48, 48)
  config.input.channels = 1
  return config
