"""AlexNet on FER2013: the VGG recipe of fer2013_vgg.py with model.name=alexnet.

  ferjax train --config experiments/fer2013_alexnet.py \
      --config.input.manual_dir=../shared/data/fer2013 --workdir runs/fer2013_alexnet

Same data, augmentation, ten-crop evaluation and optimiser as the VGG recipe
(SGD 0.01, Nesterov, weight decay 1e-4, reduce-on-plateau x0.75 / 5 epochs,
batch 64) on 48x48 grey input, where the model uses its documented
small-input geometry (see `ferjax models`).
``small_stride=2`` makes the 48x48 stem downsample by 2 as the paper's
does by 4 (see ``ferjax.models.alexnet.AlexNet``): 0.27 instead of 1.35
GFLOPs per image.
Expected: not measured by ferjax yet (a GPU run is needed: on the 2-core
CPU machine the step runs at 10.6 img/s, about 45 minutes an epoch);
``:runlocal`` trains one epoch on 2,048 images as a smoke test.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib

_VGG = pathlib.Path(__file__).with_name("fer2013_vgg.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = config_lib.parse_arg(arg, epochs=100, small_stride=1, runlocal=False)
  if args.small_stride not in (1, 2):
    raise config_lib.ConfigError("config argument 'small_stride': expected 1 "
                                 f"or 2, got {args.small_stride}")
  vgg_arg = f"epochs={args.epochs}" + (",runlocal" if args.runlocal else "")
  config = config_lib.load_config(f"{_VGG}:{vgg_arg}")
  config.model.name = "alexnet"
  if args.small_stride != 1:
    config.model.kwargs = {"small_stride": args.small_stride}
  return config
