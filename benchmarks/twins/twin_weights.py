"""ferjax variables <-> PyTorch twin state dicts, for step-by-step comparison.

The twins (``torch_models.py``, ``torch_vgg.py``) have ferjax's layers in
ferjax's order but PyTorch's names and layouts, so one table per family says
which torch module holds which ferjax module. Layouts: convolutions OIHW <->
HWIO, dense layers transposed, and the dense layer after a flatten has its
input rows reordered from torch's C,H,W to ferjax's H,W,C (feature maps are
square in every twin). BatchNorm's running statistics go to ``batch_stats``.
``num_batches_tracked`` only counts steps; ferjax has no counterpart.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ferjax.models.googlenet import INCEPTION_FILTERS
from twins import torch_models

# (torch module, ferjax module path, kind); kind 'conv:nobias' is a convolution
# without bias (BatchNorm follows), 'flatten:C' a dense layer
# reading a flattened C-channel map.
Layer = tuple[str, tuple[str, ...], str]

_INCEPTION_BRANCHES = (
    ("branch1.0", "1x1"), ("branch3.0.0", "3x3_reduce"), ("branch3.1.0", "3x3"),
    ("branch5.0.0", "5x5_reduce"), ("branch5.1.0", "5x5"),
    ("branch_pool.1.0", "pool_proj"))


def _sequential(twin: torch.nn.Module, prefix: str,
                start: dict[str, int]) -> list[Layer]:
  """Conv2d -> Conv_i, BatchNorm2d -> BatchNorm_i, Linear -> Dense_i."""
  kinds = {torch.nn.Conv2d: ("Conv", "conv"),
           torch.nn.BatchNorm2d: ("BatchNorm", "bn"),
           torch.nn.Linear: ("Dense", "dense")}
  layers = []
  for name, module in twin.get_submodule(prefix).named_children():
    if type(module) in kinds:
      base, kind = kinds[type(module)]
      index = start.get(base, 0)
      start[base] = index + 1
      layers.append((f"{prefix}.{name}", (f"{base}_{index}",), kind))
  return layers


def layers(name: str, twin: torch.nn.Module) -> list[Layer]:
  """Every parameterised layer of the twin of model ``name``."""
  if name == "lenet5":
    out = _sequential(twin, "net", {})
    out[2] = (*out[2][:2], "flatten:16")
    return out
  if torch_models.has_dense_classifier(name):
    counters: dict[str, int] = {}
    out = _sequential(twin, "features", counters)
    convs = [m for m in twin.features if isinstance(m, torch.nn.Conv2d)]
    head = _sequential(twin, "classifier", counters)
    head[0] = (*head[0][:2], f"flatten:{convs[-1].out_channels}")
    return out + head
  if name in ("googlenet", "googlenet_bn"):
    bn = name == "googlenet_bn"

    def conv(torch_seq: str, path: tuple[str, ...]) -> list[Layer]:
      """Sequential(Conv2d[, BatchNorm2d], ReLU) -> conv [and its _bn]."""
      if not bn:
        return [(f"{torch_seq}.0", path, "conv")]
      return [(f"{torch_seq}.0", path, "conv:nobias"),
              (f"{torch_seq}.1", (*path[:-1], f"{path[-1]}_bn"), "bn")]

    out = (conv("stem.0", ("conv1_7x7",)) +
           conv("stem.2", ("conv2_3x3_reduce",)) +
           conv("stem.3", ("conv2_3x3",)))
    blocks = [i for i, b in enumerate(twin.blocks)
              if not isinstance(b, torch.nn.MaxPool2d)]
    for index, stage in zip(blocks, INCEPTION_FILTERS, strict=True):
      for torch_name, ours in _INCEPTION_BRANCHES:
        out += conv(f"blocks.{index}.{torch_name[:-2]}",
                    (f"inception_{stage}", ours))
    for aux_index, head in zip(sorted(twin.aux, key=int), ("aux1", "aux2"),
                               strict=True):
      prefix = f"aux.{aux_index}"
      out += conv(f"{prefix}.conv", (f"{head}_head", "conv"))
      out += [(f"{prefix}.fc", (f"{head}_head", "fc"), "flatten:128"),
              (f"{prefix}.classifier", (f"{head}_head", "classifier"),
               "dense")]
    out.append(("classifier", ("classifier",), "dense"))
    return out
  if name.startswith("resnet"):
    out = [("stem.0", ("Conv_0",), "conv:nobias"),
           ("stem.1", ("BatchNorm_0",), "bn")]
    for i, block in enumerate(twin.blocks):
      torch_names = ["conv1", "bn1", "conv2", "bn2"]
      if len(block.shortcut):
        torch_names += ["shortcut.0", "shortcut.1"]
      for j, torch_name in enumerate(torch_names):
        kind = "bn" if "bn" in torch_name or torch_name.endswith(".1") else (
            "conv:nobias")
        base = "BatchNorm" if kind == "bn" else "Conv"
        out.append((f"blocks.{i}.{torch_name}",
                    (f"BasicBlock_{i}", f"{base}_{j // 2}"), kind))
    out.append(("fc", ("Dense_0",), "dense"))
    return out
  raise ValueError(f"no twin layer table for {name!r}")


def _dense_from_torch(w: np.ndarray, kind: str) -> np.ndarray:
  if kind == "dense":
    return w.T
  channels = int(kind.split(":")[1])
  out, features = w.shape
  side = int(round((features // channels) ** 0.5))
  if side * side * channels != features:
    raise ValueError(f"dense input {features} is not a square {channels}-"
                     "channel map")
  return w.reshape(out, channels, side, side).transpose(2, 3, 1, 0).reshape(
      features, out)


def _dense_to_torch(k: np.ndarray, kind: str) -> np.ndarray:
  if kind == "dense":
    return k.T
  channels = int(kind.split(":")[1])
  features, out = k.shape
  side = int(round((features // channels) ** 0.5))
  return k.reshape(side, side, channels, out).transpose(3, 2, 0, 1).reshape(
      out, features)


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
  for key in path:
    tree = tree[key]
  return tree


def to_variables(name: str, twin: torch.nn.Module) -> dict[str, Any]:
  """The twin's current weights as ferjax ``params`` and ``batch_stats``."""
  state = {k: v.detach().numpy().copy() for k, v in twin.state_dict().items()}
  params: dict[str, Any] = {}
  stats: dict[str, Any] = {}

  def put(tree, path, leaves):
    node = tree
    for key in path:
      node = node.setdefault(key, {})
    node.update({k: np.array(v, np.float32) for k, v in leaves.items()})

  for torch_name, path, kind in layers(name, twin):
    w = state[f"{torch_name}.weight"]
    b = state.get(f"{torch_name}.bias")
    if kind == "conv":
      put(params, path, {"kernel": w.transpose(2, 3, 1, 0), "bias": b})
    elif kind == "conv:nobias":
      put(params, path, {"kernel": w.transpose(2, 3, 1, 0)})
    elif kind == "bn":
      put(params, path, {"scale": w, "bias": b})
      put(stats, path, {"mean": state[f"{torch_name}.running_mean"],
                        "var": state[f"{torch_name}.running_var"]})
    else:
      put(params, path, {"kernel": _dense_from_torch(w, kind), "bias": b})
  return {"params": params, "batch_stats": stats}


def load_variables(name: str, twin: torch.nn.Module,
                   variables: Mapping[str, Any]) -> None:
  """Copies ferjax ``variables`` into the twin's parameters and buffers."""
  state = twin.state_dict()
  new = {}
  stats = variables.get("batch_stats", {})
  for torch_name, path, kind in layers(name, twin):
    leaves = _get(variables["params"], path)
    if kind.startswith("conv"):
      new[f"{torch_name}.weight"] = np.asarray(leaves["kernel"]).transpose(
          3, 2, 0, 1)
      if kind == "conv":
        new[f"{torch_name}.bias"] = leaves["bias"]
    elif kind == "bn":
      new[f"{torch_name}.weight"] = leaves["scale"]
      new[f"{torch_name}.bias"] = leaves["bias"]
      new[f"{torch_name}.running_mean"] = _get(stats, path)["mean"]
      new[f"{torch_name}.running_var"] = _get(stats, path)["var"]
    else:
      new[f"{torch_name}.weight"] = _dense_to_torch(np.asarray(
          leaves["kernel"]), kind)
      new[f"{torch_name}.bias"] = leaves["bias"]
  missing = [k for k in state if k not in new
             and not k.endswith("num_batches_tracked")]
  if missing:
    raise ValueError(f"twin of {name}: no ferjax variable for {missing[0]}")
  state.update({k: torch.from_numpy(np.array(v, np.float32, order="C"))
                for k, v in new.items()})
  twin.load_state_dict(state)
