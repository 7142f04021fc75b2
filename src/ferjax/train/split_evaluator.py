"""Named evaluations: a split, its preprocessing, one compiled pass over it."""

import functools
import math
from typing import Any

import flax
import ml_collections
import numpy as np

from ferjax.data import geometry_features
from ferjax.data import loading
from ferjax.evaluate.views import VIEWS
from ferjax import losses
from ferjax import metrics as metrics_lib
from ferjax.train import steps
from ferjax.train.parallel import Parallel


class Evaluator:
  """Evaluates a state on one split, padded and masked to count each once."""

  def __init__(self, name: str, split: loading.Split, *,
               eval_config: ml_collections.ConfigDict, batch_size: int,
               parallel: Parallel, model: flax.linen.Module,
               inputs: steps.InputSpec, class_names: tuple[str, ...],
               loss: losses.LossSpec):
    self.name = name
    self.class_names = class_names
    # Which variables of a run it evaluates: 'raw' or their moving average.
    self.weights = eval_config.get("weights", "raw")
    n = len(split)
    per_device = max(1, math.ceil(batch_size / parallel.num_devices))
    global_batch = per_device * parallel.num_devices
    num_batches = max(1, math.ceil(n / global_batch))
    padded = num_batches * global_batch
    images = np.zeros((padded, *split.images.shape[1:]), np.uint8)
    labels = np.zeros((padded,), np.int32)
    images[:n], labels[:n] = split.images, split.labels
    data = {"images": images, "labels": labels}
    # Faces FaceMesh scored low (runs fusing geometry): reported, not hidden.
    self._low_score_meshes = None
    if split.geometry is not None:
      data["geometry"] = np.zeros((padded, *split.geometry.shape[1:]),
                                  np.float32)
      data["geometry"][:n] = split.geometry
      self._low_score_meshes = geometry_features.low_score_meshes(split)
    self._data = parallel.replicate(data)
    self._parallel = parallel
    view = VIEWS[eval_config.get("tta", "none")]
    spec = steps.EvalSpec(
        num_examples=n, num_batches=num_batches, per_device_batch=per_device,
        num_devices=parallel.num_devices, num_classes=len(class_names),
        inputs=inputs, loss=loss, mirrored_views=view.mirrored)
    views = view.views(eval_config)
    self._fn = parallel.map(functools.partial(
        steps.eval_split, model=model, spec=spec, views=views))
    # Compiled on first use: training never asks for the probabilities.
    self._log_probabilities_fn = functools.partial(
        steps.split_log_probabilities, model=model, spec=spec, views=views)
    self.labels = split.labels

  def __call__(self, variables: dict[str, Any]) -> dict[str, Any]:
    """Metrics of the model ``variables`` (params, batch_stats), replicated."""
    totals = self._parallel.unreplicate(self._fn(variables, self._data))
    result = metrics_lib.summarize(totals, self.class_names)
    if self._low_score_meshes is not None:
      result["low_score_meshes"] = self._low_score_meshes
    return result

  def log_probabilities(self, variables: dict[str, Any]) -> np.ndarray:
    """(examples, classes) class log-probabilities, in the split's order:
    those the loss is computed from."""
    return np.asarray(self._parallel.unreplicate(
        self._log_probabilities(variables, self._data)))

  def probabilities(self, variables: dict[str, Any]) -> np.ndarray:
    """(examples, classes) class probabilities, in the split's order."""
    return np.exp(self.log_probabilities(variables))

  @functools.cached_property
  def _log_probabilities(self):
    return self._parallel.map(self._log_probabilities_fn)
