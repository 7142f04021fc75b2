"""Starting a run from another run's variables (transfer, fine-tuning).

Every layer whose variables all match in path and shape is copied (a layer
is taken whole or not at all); the optimizer starts fresh. When the two runs'
class names differ, the classifier heads keep their fresh initialisation even
if their shapes match, since output ``i`` would otherwise predict the
source's class ``i``. A head is found without knowing the model family:
every Dense (a 2-D ``kernel``) whose output width is ``num_classes`` -- LeNet,
VGG and AlexNet's last ``Dense_*``, GoogLeNet's ``classifier`` and its
auxiliary heads' ``aux*_head/classifier``. (Variable trees come back with
sorted keys, so "the last Dense" cannot be told from the tree; no family has
a hidden layer exactly ``num_classes`` wide, and the manifest lists every
re-initialised path.)
"""

import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from ferjax.run.model import open_run
from ferjax.run.run_dir import RunDir
from ferjax.train import optimizer as optimizer_lib
from ferjax.train import state as state_lib


def head_paths(params: dict[str, Any], num_classes: int) -> list[str]:
  """'/'-joined paths of the classifier heads' parameters (see module doc)."""
  out = []

  def walk(tree: dict[str, Any], prefix: str) -> None:
    for k, v in tree.items():
      if not isinstance(v, dict):
        continue
      kernel = v.get("kernel")
      if np.ndim(kernel) == 2 and np.shape(kernel)[-1] == num_classes:
        out.extend(f"{prefix}{k}/{leaf}" for leaf in v)
      else:
        walk(v, f"{prefix}{k}/")

  walk(params, "")
  return sorted(out)


def _flat(tree: Any) -> dict[str, Any]:
  return {optimizer_lib.path_name(p): v
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _layer(name: str) -> str:
  """'Dense_0' of 'Dense_0/kernel': the module a variable belongs to."""
  return name.rpartition("/")[0]


def _restore_source(workdir: pathlib.Path, which: str | int) -> tuple[
    int, dict[str, Any]]:
  """The source run's step ``which`` resolves to, and its variables."""
  try:
    source = open_run(workdir)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"config.init_from.workdir: {e}") from None
  try:
    step, variables = source.restore(which)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"config.init_from.checkpoint={which!r}: {e}") from e
  return step, variables["raw"]


def _source_class_names(workdir: pathlib.Path) -> list[str]:
  try:
    dataset = RunDir(workdir).dataset()
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"config.init_from.workdir: {e}; the source run's class names are "
        "needed to decide whether to keep its classifier") from None
  return list(dataset["class_names"])


def load(state: state_lib.TrainState, *, init_from: ml_collections.ConfigDict,
         class_names: tuple[str, ...] | list[str],
         tx: optax.GradientTransformation) -> tuple[state_lib.TrainState,
                                                    dict[str, Any]]:
  """``state`` with the source run's matching variables and a fresh optimizer.

  Returns the new state and the record the manifest keeps of the import.
  """
  workdir = pathlib.Path(init_from.workdir).expanduser()
  step, variables = _restore_source(workdir,
                                    init_from.get("checkpoint", "best"))
  reinit_head = _source_class_names(workdir) != list(class_names)
  keep_fresh = set(head_paths(state.params, len(class_names))
                   if reinit_head else ())
  loaded, skipped = 0, []
  merged = {}
  for collection in ("params", "batch_stats"):
    source = _flat(variables[collection])
    ours = _flat(getattr(state, collection))
    reasons = {}
    for name, value in ours.items():
      theirs = source.get(name)
      if theirs is None:
        reasons[name] = "not in the source run"
      elif np.shape(theirs) != np.shape(value):
        reasons[name] = (f"source shape {np.shape(theirs)}, ours "
                         f"{np.shape(value)}")
      elif collection == "params" and name in keep_fresh:
        reasons[name] = "head re-initialised"
    # A layer is taken whole or not at all: a bias copied next to a fresh
    # kernel (Dense_0 when the input size differs) is noise, not transfer.
    partial = {_layer(name) for name in reasons}
    for name in ours:
      if name not in reasons and _layer(name) in partial:
        reasons[name] = f"the rest of {_layer(name)} is not loaded"
    skipped += [f"{collection}/{name}: {why}" for name, why in reasons.items()]
    loaded += len(ours) - len(reasons)

    def pick(path: tuple[Any, ...], value: Any, source=source,
             reasons=reasons) -> Any:
      name = optimizer_lib.path_name(path)
      if name in reasons:
        return value
      return np.asarray(source[name], np.asarray(value).dtype)

    merged[collection] = jax.tree_util.tree_map_with_path(
        pick, getattr(state, collection))
  record = {"workdir": str(workdir.absolute()), "step": step,
            "loaded": loaded, "skipped": skipped,
            "head_reinitialised": reinit_head}
  return state.replace(params=merged["params"],
                       batch_stats=merged["batch_stats"],
                       opt_state=tx.init(merged["params"])), record
