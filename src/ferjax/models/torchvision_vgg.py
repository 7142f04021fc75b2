"""`ferjax convert torchvision`: a torchvision VGG state dict as a ferjax run.

AlexNet and GoogLeNet state dicts are recognised by their keys and mapped by
``torchvision_alexnet`` and ``torchvision_googlenet`` (models ``alexnet_tv``,
``googlenet_tv``); everything else here serves all three.

  ferjax convert torchvision vgg16_bn-b566c6a1.pth runs/imagenet_vgg16_bn
  ferjax train --config experiments/fer2013_vgg.py \
      --config.init_from.workdir=runs/imagenet_vgg16_bn ...

The output is a minimal run directory, written by
``ferjax.run_dir.write_imported`` (the function every converter calls): a
config, a manifest recording the source file, and one checkpoint (step 0) of
``params`` and ``batch_stats``, so that ``config.init_from`` and
``ferjax predict`` read it through the same code as a trained run. This
module only maps weights. Its dataset is ImageNet (1000 placeholder class names, 224x224
RGB, ImageNet's mean and std); there is no ImageNet builder, so it cannot be
trained further or evaluated with ``ferjax eval``.

The weight mapping is the one ``ferjax.models.vgg.VGG`` documents. Expected
shapes come from ferjax's own model at 224x224x3, so a truncated or foreign
state dict is refused with the key that does not fit.
"""

import argparse
import os
import pathlib
import re
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ferjax import config as config_lib
from ferjax import run_dir
from ferjax.models import create_model
from ferjax.models import torchvision_alexnet
from ferjax.models import torchvision_googlenet

IMAGE_SIZE = (224, 224)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Convolutions in ``features`` -> VGG depth (weight layers = convs + 3).
_DEPTH_BY_CONVS = {8: 11, 10: 13, 13: 16, 16: 19}
_IGNORED_SUFFIX = ".num_batches_tracked"


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


def architecture(state: Mapping[str, np.ndarray],
                 path: str | os.PathLike) -> tuple[int, bool]:
  """(depth, batch_norm) of a torchvision VGG state dict, from its keys."""
  convs = conv_indices(state)
  if not convs or convs[0] != 0:
    raise ValueError(
        f"{path}: not a torchvision VGG state dict: no convolution key "
        f"'features.0.weight' (its first keys: "
        f"{', '.join(list(state)[:3]) or 'none'})")
  if len(convs) not in _DEPTH_BY_CONVS:
    raise ValueError(
        f"{path}: {len(convs)} convolutions in 'features' (the last is "
        f"'features.{convs[-1]}.weight'); torchvision's VGG-11/13/16/19 have "
        "8/10/13/16 -- is the state dict truncated?")
  return (_DEPTH_BY_CONVS[len(convs)],
          f"features.{convs[0] + 1}.running_mean" in state)


def conv_indices(state: Mapping[str, np.ndarray]) -> list[int]:
  """Positions in ``features`` of the Conv2d layers (4-D weights), in order."""
  out = []
  for key, value in state.items():
    parts = key.split(".")
    if (len(parts) == 3 and parts[0] == "features" and parts[1].isdigit()
        and parts[2] == "weight" and np.ndim(value) == 4):
      out.append(int(parts[1]))
  return sorted(out)


def _conv_kernel(w: np.ndarray) -> np.ndarray:
  return w.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def _dense_kernel(w: np.ndarray) -> np.ndarray:
  return w.T


def _flatten_kernel(channels: int) -> Callable[[np.ndarray], np.ndarray]:
  """Dense_0: torch flattens C,H,W, ferjax H,W,C; rows are reordered."""
  h, w = (-(-side // 32) for side in IMAGE_SIZE)

  def transform(weight: np.ndarray) -> np.ndarray:
    out = weight.shape[0]
    return weight.reshape(out, channels, h, w).transpose(2, 3, 1, 0).reshape(
        h * w * channels, out)

  return transform


def _torch_shape(ours: tuple[int, ...], kind: str) -> tuple[int, ...]:
  if kind == "conv":
    return (ours[3], ours[2], ours[0], ours[1])
  if kind == "dense":
    return (ours[1], ours[0])
  return ours


def to_variables(state: Mapping[str, np.ndarray],
                 path: str | os.PathLike) -> tuple[str, dict[str, Any], int]:
  """(model name, ferjax variables, num_classes) of a torchvision state dict.

  Every ferjax variable must come from a key of the expected shape, and every
  key (bar BatchNorm's step counters) must be used.
  """
  depth, batch_norm = architecture(state, path)
  name = f"vgg{depth}{'_bn' if batch_norm else ''}"
  for key in ("classifier.6.weight", "classifier.0.weight"):
    if key not in state or np.ndim(state[key]) != 2:
      raise ValueError(f"{path}: key {key!r} missing or not a matrix; a "
                       f"torchvision {name} state dict has it (truncated?)")
  num_classes = state["classifier.6.weight"].shape[0]
  width = state["classifier.0.weight"].shape[0]
  model = create_model(name, num_classes=num_classes, classifier_width=width)
  abstract = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, *IMAGE_SIZE, 3)), train=False))
  shapes = jax.tree.map(lambda a: tuple(a.shape), abstract)
  convs = conv_indices(state)
  last_width = shapes["params"][f"Conv_{len(convs) - 1}"]["kernel"][-1]

  # (collection, module, leaf) <- (torch key, kind, transform)
  sources: dict[tuple[str, str, str], tuple[str, str, Callable]] = {}
  identity = np.asarray
  for i, index in enumerate(convs):
    sources["params", f"Conv_{i}", "kernel"] = (
        f"features.{index}.weight", "conv", _conv_kernel)
    sources["params", f"Conv_{i}", "bias"] = (
        f"features.{index}.bias", "vector", identity)
    if batch_norm:
      bn = f"features.{index + 1}"
      for collection, leaf, torch_leaf in (
          ("params", "scale", "weight"), ("params", "bias", "bias"),
          ("batch_stats", "mean", "running_mean"),
          ("batch_stats", "var", "running_var")):
        sources[collection, f"BatchNorm_{i}", leaf] = (
            f"{bn}.{torch_leaf}", "vector", identity)
  for i, index in enumerate((0, 3, 6)):
    sources["params", f"Dense_{i}", "kernel"] = (
        f"classifier.{index}.weight", "dense",
        _flatten_kernel(last_width) if i == 0 else _dense_kernel)
    sources["params", f"Dense_{i}", "bias"] = (
        f"classifier.{index}.bias", "vector", identity)

  variables: dict[str, Any] = {"params": {}, "batch_stats": {}}
  for collection, modules in shapes.items():
    for module, leaves in modules.items():
      for leaf, ours in leaves.items():
        key, kind, transform = sources[collection, module, leaf]
        if key not in state:
          raise ValueError(
              f"{path}: key {key!r} missing; a torchvision {name} state dict "
              "has it (is the file truncated?)")
        expected = _torch_shape(ours, kind)
        if tuple(state[key].shape) != expected:
          raise ValueError(
              f"{path}: key {key!r} has shape {tuple(state[key].shape)}, "
              f"torchvision's {name} has {expected}")
        variables[collection].setdefault(module, {})[leaf] = (
            np.ascontiguousarray(transform(state[key]), np.float32))
  used = {source[0] for source in sources.values()}
  unused = [k for k in state if k not in used
            and not k.endswith(_IGNORED_SUFFIX)]
  if unused:
    raise ValueError(
        f"{path}: key {unused[0]!r} is not part of torchvision's {name}"
        f"{f' (and {len(unused) - 1} more)' if len(unused) > 1 else ''}")
  return name, variables, num_classes


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
    name, variables, num_classes = to_variables(state, pth)
    width = variables["params"]["Dense_0"]["kernel"].shape[1]
    kwargs = {} if width == 4096 else {"classifier_width": width}

  config = config_lib.base_config()
  config.input.dataset = "imagenet"
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


def main(argv: Sequence[str]) -> int:
  """Runs `ferjax convert torchvision PTH OUT`; 2 on unusable input."""
  parser = argparse.ArgumentParser(
      prog="ferjax convert torchvision",
      description="Turn a torchvision VGG-11/13/16/19(_bn), AlexNet or "
      "GoogLeNet state dict (.pth) into a ferjax run directory for "
      "config.init_from.workdir (AlexNet and GoogLeNet as alexnet_tv and "
      "googlenet_tv).")
  parser.add_argument("pth", type=os.path.expanduser,
                      help="torchvision state dict, e.g. "
                      "vgg16_bn-b566c6a1.pth")
  parser.add_argument("out", type=os.path.expanduser,
                      help="new run directory to create")
  args = parser.parse_args(argv)
  try:
    out = convert(args.pth, args.out,
                  argv=["ferjax", "convert", "torchvision", *argv])
  except (ImportError, FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"ferjax convert torchvision: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0
