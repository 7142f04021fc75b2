"""A torchvision VGG, AlexNet or GoogLeNet state dict as a ferjax run.

The family is recognised by the state dict's keys and mapped by
``torchvision_vgg``, ``torchvision_alexnet`` or ``torchvision_googlenet``
(models ``vgg*``, ``alexnet_tv``, ``googlenet_tv``); this module reads the
file and writes the run.

  ferjax convert torchvision vgg16_bn-b566c6a1.pth runs/imagenet_vgg16_bn
  ferjax train --config experiments/fer2013_vgg.py \
      --config.init_from.workdir=runs/imagenet_vgg16_bn ...

The output is a minimal run directory, written by
``ferjax.run.run_dir.write_imported`` (the function every converter calls): a
config, a manifest recording the source file, and one checkpoint (step 0) of
``params`` and ``batch_stats``, so that ``config.init_from`` and
``ferjax predict`` read it through the same code as a trained run. Its
dataset is ImageNet (1000 placeholder class names, 224x224 RGB, ImageNet's
mean and std); there is no ImageNet builder, so it cannot be trained further
or evaluated with ``ferjax eval``.
"""

import os
import pathlib
import re
import sys
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.convert import torchvision_alexnet
from ferjax.convert import torchvision_googlenet
from ferjax.convert import torchvision_vgg
from ferjax.run import run_dir

IMAGE_SIZE = torchvision_vgg.IMAGE_SIZE
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torch_reason(error: BaseException, limit: int = 200) -> str:
  """torch.load's reason in one line: its messages run to paragraphs of
  advice on unsafe loading, with the cause after "WeightsUnpickler error:",
  or start with the C++ location of a failed check."""
  text = str(error)
  _, marker, cause = text.partition("WeightsUnpickler error:")
  if not marker:
    cause = type(error).__name__ + ": " + re.sub(
        r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", text)
  cause = " ".join(cause.split()).split(" Check the documentation")[0]
  cause = cause.split(". Please use")[0]
  return cause if len(cause) <= limit else cause[:limit - 3] + "..."


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The tensors of a ``torch.save(model.state_dict(), path)`` file."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "ferjax convert torchvision reads PyTorch files and needs torch: "
        "pip install torch") from e
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such file")
  try:
    with warnings.catch_warnings():  # Its warnings would be a second line.
      warnings.simplefilter("ignore")
      loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    # Any file may be handed in; torch.load's errors on one that is not a
    # checkpoint range from UnpicklingError to a bare KeyError.
    raise ValueError(
        f"{path}: not a readable PyTorch state dict (a truncated download?): "
        f"{_torch_reason(e)}") from None
  if not isinstance(loaded, Mapping) or not all(
      isinstance(v, torch.Tensor) for v in loaded.values()):
    raise ValueError(
        f"{path}: expected a state dict (a mapping of names to tensors, as "
        f"torch.save(model.state_dict(), path) writes), got "
        f"{type(loaded).__name__}")
  return {k: (v.float() if v.is_floating_point() else v).numpy()
          for k, v in loaded.items()}


def convert(pth: str | os.PathLike, out: str | os.PathLike,
            *, argv: Sequence[str] | None = None) -> pathlib.Path:
  """Writes the run directory ``out`` for the torchvision VGG file ``pth``.

  ``out`` appears complete or not at all: it is written next to itself under
  a temporary name and renamed.
  """
  pth, out = pathlib.Path(pth), pathlib.Path(out)
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    raise FileExistsError(
        f"{out}: already exists and is not an empty directory; converting "
        "never overwrites, choose a new OUT")
  state = read_state_dict(pth)
  mean, std = IMAGENET_MEAN, IMAGENET_STD
  if torchvision_googlenet.is_googlenet(state):
    name, variables, num_classes, kwargs = torchvision_googlenet.to_variables(
        state, pth)
    mean, std = torchvision_googlenet.MEAN, torchvision_googlenet.STD
  elif torchvision_alexnet.is_alexnet(state):
    name, variables, num_classes, kwargs = torchvision_alexnet.to_variables(
        state, pth)
  else:
    name, variables, num_classes = torchvision_vgg.to_variables(state, pth)
    width = variables["params"]["Dense_0"]["kernel"].shape[1]
    kwargs = {} if width == 4096 else {"classifier_width": width}

  config = config_lib.base_config()
  config.input.dataset = config_checks.CONVERTED_DATASETS[0]
  config.input.image_size = IMAGE_SIZE
  config.input.channels = 3
  config.input.mean = mean
  config.input.std = std
  config.model.name = name
  config.model.kwargs.update(kwargs)
  prefix = "imagenet" if num_classes == 1000 else "class"
  return run_dir.write_imported(
      out, config, variables,
      class_names=[f"{prefix}_{i:03d}" for i in range(num_classes)],
      image_shape=(*IMAGE_SIZE, 3),
      source_file=pth, source={"format": "torchvision", "model": name},
      argv=list(argv) if argv is not None else ["ferjax", *sys.argv[1:]])
