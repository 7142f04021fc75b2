"""A run's model: the one way to open a trained run.

Read its config (the data directories those of this machine where given),
restore a checkpoint's variables, build its model: evaluation, calibration,
saliency, export, prediction and init-from all open a run with ``open_run``;
``load_model`` is the inference form (no dataset, no optimizer), which also
checks that the checkpoint fits the model its records describe.
"""

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from ferjax.models import create_model
from ferjax.models import fusion
from ferjax.run.run_dir import RunDir


def build_model(config: ml_collections.ConfigDict, num_classes: int, *,
                bn_axis_name: str | None = None) -> nn.Module:
  """The model ``config.model`` names; with ``bn_axis_name`` its batch
  statistics are synchronised over that axis (the parallel steps')."""
  kwargs = {"dtype": jnp.dtype(config.model.dtype),
            "fusion": config.model.get("fusion"),
            **dict(config.model.kwargs or {})}
  if bn_axis_name is not None:
    kwargs["bn_axis_name"] = bn_axis_name
  return create_model(config.model.name, num_classes=num_classes, **kwargs)


@dataclasses.dataclass(frozen=True)
class OpenRun:
  """A run directory and its config, ready to restore and build from."""

  run: RunDir
  config: ml_collections.ConfigDict

  def restore(self, checkpoint: str | int = "best",
              weights: Iterable[str] = ("raw",)) -> tuple[int, dict[str, Any]]:
    """The step ``checkpoint`` ('best', 'latest', a step) names and its
    variables by ``weights`` ('raw', or 'ema' for the moving average)."""
    with self.run.checkpoints(self.config) as ckpt:
      step = self.run.resolve_step(ckpt, checkpoint)
      return step, {w: ckpt.restore_variables(step, w)
                    for w in sorted(set(weights))}

  def model(self, num_classes: int | None = None, *,
            bn_axis_name: str | None = None) -> nn.Module:
    """The run's model, for the manifest's classes unless told how many."""
    if num_classes is None:
      num_classes = len(self.run.dataset()["class_names"])
    return build_model(self.config, num_classes, bn_axis_name=bn_axis_name)


def open_run(workdir: str | os.PathLike, *, data_dir: str | None = None,
             manual_dir: str | None = None) -> OpenRun:
  """The run at ``workdir``, its data read from ``data_dir`` and
  ``manual_dir`` where given (where the data lies on this machine, if not
  where the run was trained)."""
  run = RunDir(workdir)
  config = run.read_config()
  config.input.data_dir = data_dir or config.input.data_dir
  config.input.manual_dir = manual_dir or config.input.manual_dir
  return OpenRun(run, config)


def _check_fit(model: nn.Module, variables: Any,
               input_shape: tuple[int, int, int], num_classes: int,
               workdir: str) -> None:
  """Raises ValueError naming the first parameter of the checkpoint whose
  shape is not the model's: the run's records (its class names, above all)
  say another model than the one it saved."""
  wanted = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, *input_shape)), train=False))
  saved = dict(jax.tree_util.tree_flatten_with_path(variables["params"])[0])
  for path, leaf in jax.tree_util.tree_flatten_with_path(wanted["params"])[0]:
    got = getattr(saved.get(path), "shape", None)
    if got != leaf.shape:
      name = "/".join(str(getattr(k, "key", k)) for k in path)
      raise ValueError(
          f"{workdir}: its checkpoint does not fit the model that config.json "
          f"and manifest.json describe ({model.__class__.__name__}, "
          f"{num_classes} classes): params/{name} is "
          f"{got if got is not None else 'missing'}, expected {leaf.shape}")


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A run's model with one checkpoint's variables, and the records that say
  how to feed it (``config.input``) and what it predicts (``dataset``)."""

  model: nn.Module
  variables: Any
  config: Any
  dataset: dict[str, Any]
  step: int
  source: str  # The checkpoint's path, named in errors.
  # The softmax temperature stored for this checkpoint (ferjax calibrate).
  temperature: float | None = None
  # Whether the checkpoint's files matched their recorded checksums.
  verified: bool = True


def load_model(workdir: str | os.PathLike | None = None,
               checkpoint: str = "best") -> LoadedModel:
  """The model of a training run at its best (or given) checkpoint.

  Reads the run directory and the checkpoint only: no dataset, no optimizer.
  Without ``workdir``: the bundled model (``ferjax.pretrained``).
  """
  from ferjax import pretrained  # pylint: disable=g-import-not-at-top

  opened = open_run(pretrained.path() if workdir is None else workdir)
  run, config = opened.run, opened.config
  if fusion.fuses_geometry(config.model):
    raise ValueError(
        f"{workdir}: its model fuses the face's geometry "
        "(model.fusion.features=('geometry',)) and reads each face's "
        "FaceMesh descriptor beside its image, which predict, export and "
        "the bundled inference do not compute; evaluate it on its dataset "
        f"with `ferjax eval --workdir {workdir}`")
  dataset = run.dataset()
  with run.checkpoints(config) as ckpt:
    step = run.resolve_step(ckpt, checkpoint)
    variables = ckpt.restore_variables(step)
    verified = ckpt.is_verified(step)
  model = opened.model(len(dataset["class_names"]))
  _check_fit(model, variables, (*config.input.image_size,
                                config.input.channels),
             len(dataset["class_names"]), workdir)
  return LoadedModel(model, variables, config, dataset, step,
                     f"checkpoint {run.checkpoints_path / str(step)}",
                     run.temperature(step), verified)
