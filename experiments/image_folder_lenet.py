"""LeNet-5 on your own photos in class folders, faces cropped as predict's.

  ferjax train --config experiments/image_folder_lenet.py \
      --manual-dir DIR --config.input.data_dir=DATA --workdir runs/mine

DIR holds ``<class>/<image>`` (or ``{train,val,test}/<class>/<image>``, then
pooled), classes named as ferjax's or their synonyms, or mapped by
``DIR/classes.json`` (README, "Your own images"). Faces are found and aligned
when the dataset is built (``ferjax data prepare image_folder``, or here on
first use); images without a face are listed in the build log and
DATA/image_folder/auto/1.0.0/metadata.json. A seeded, stratified 70/30 split
of everything is the test set, as for CK+ without subjects. Accuracy
depends on your photos; nothing is measured here. ``:runlocal`` trains 2
epochs (a smoke test; the end-to-end test runs it on generated faces).
"""

import ml_collections

from ferjax import config as config_lib


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, runlocal=False)
  config = config_lib.base_config()
  config.num_epochs = 2 if args.runlocal else 30
  config.batch_size = 4 if args.runlocal else 32

  config.input.dataset = "image_folder"
  config.input.builder_config = "auto"  # predict's default detector.
  config.input.protocol = "review_70_30"
  config.input.image_size = (32, 32)
  config.input.channels = 3
  config.input.augment = ml_collections.ConfigDict(dict(
      crop=dict(padding=4, mode="pad"), flip=True, rotation=10.0))

  config.model.name = "lenet5"
  config.optimizer.learning_rate = 0.01
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = "cosine"

  config.evals.test = ml_collections.ConfigDict(dict(split="test", tta="none"))
  config.checkpoint.best_metric = "test/accuracy"
  config.parallel.cpu_devices = 1
  return config
