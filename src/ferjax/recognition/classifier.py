"""A trained model packaged for inference on face crops."""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ferjax.data import preprocess


@dataclasses.dataclass(frozen=True)
class Classifier:
  """Maps uint8 face crops, in the format of the training images, to scores.

  The crops are given at the training set's stored shape (``crop_shape``, e.g.
  48x48x1 for FER2013) so that inference reuses the evaluation preprocessing
  (resize, channels, normalisation) instead of re-implementing it.
  """

  class_names: tuple[str, ...]
  crop_shape: tuple[int, int, int]
  predict_fn: Callable[[jnp.ndarray], jnp.ndarray]

  def predict(self, crops: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 ``(N, num_classes)``, for uint8 crops."""
    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.shape[1:] != self.crop_shape:
      raise ValueError(
          f"crops must be uint8 of shape (N, {', '.join(map(str, self.crop_shape))}),"
          f" got {crops.dtype} {crops.shape}")
    if not len(crops):
      return np.zeros((0, len(self.class_names)), np.float32)
    return np.asarray(self.predict_fn(jnp.asarray(crops)), np.float32)


def classifier_from_model(model: nn.Module, variables: Any, *,
                          class_names: Sequence[str],
                          crop_shape: Sequence[int],
                          image_size: Sequence[int], channels: int,
                          mean: Sequence[float],
                          std: Sequence[float]) -> Classifier:
  """Wraps a model and its variables with the evaluation preprocessing."""

  @jax.jit
  def predict_fn(crops: jnp.ndarray) -> jnp.ndarray:
    x = preprocess.to_model_input(
        preprocess.to_unit_float(crops), image_size=image_size,
        channels=channels, mean=mean, std=std)
    return jax.nn.softmax(model.apply(variables, x, train=False))

  return Classifier(tuple(class_names), tuple(crop_shape), predict_fn)


def load_classifier(workdir: str, checkpoint: str = "best") -> Classifier:
  """The classifier of a training run: its best (or given) checkpoint.

  Class names, the stored image format and the normalisation all come from
  the run's own records, so inference preprocesses exactly as evaluation did.
  """
  import json
  import pathlib

  from ferjax.models import create_model
  from ferjax.train import checkpoint as checkpoint_lib
  from ferjax.train import evaluate

  config = evaluate.load_run_config(workdir)
  manifest_path = pathlib.Path(workdir) / "manifest.json"
  if not manifest_path.is_file():
    raise FileNotFoundError(f"{workdir}: {manifest_path} does not exist")
  dataset = json.loads(manifest_path.read_text())["dataset"]
  ckpt_dir = pathlib.Path(workdir) / "checkpoints"
  if not ckpt_dir.is_dir():
    raise FileNotFoundError(f"{workdir} holds no checkpoints ({ckpt_dir})")
  ckpt = checkpoint_lib.Checkpoints(
      ckpt_dir, best_metric=config.checkpoint.best_metric,
      best_mode=config.checkpoint.best_mode, read_only=True)
  step = evaluate.select_step(ckpt, checkpoint, workdir)
  variables = ckpt.restore_variables(step)
  model = create_model(
      config.model.name, num_classes=len(dataset["class_names"]),
      dtype=jnp.dtype(config.model.dtype), fusion=config.model.get("fusion"),
      **dict(config.model.get("kwargs") or {}))
  return classifier_from_model(
      model, variables, class_names=dataset["class_names"],
      crop_shape=dataset["image_shape"], image_size=config.input.image_size,
      channels=config.input.channels, mean=config.input.mean,
      std=config.input.std)
