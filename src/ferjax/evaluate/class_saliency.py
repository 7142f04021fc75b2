"""The average saliency map of each class over a split: what a run's model
looks at for angry faces, for happy ones, ... (``ferjax eval
--saliency-by-class PNG``).

Each image's map is that of its true class (Grad-CAM, or the input gradient
where the model has no convolutional block: ``models.saliency``), at the
model's input size; a class's figure is the mean over its examples.
"""

import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from ferjax.data import preprocess
from ferjax.models import saliency
from ferjax.run.model import open_run
from ferjax.train import setup


def mean_saliency_by_class(workdir: str | os.PathLike, *, split: str,
                           checkpoint: str = "best",
                           data_dir: str | None = None,
                           manual_dir: str | None = None,
                           batch_size: int = 64) -> dict[str, Any]:
  """{"maps": (classes, H, W) mean maps at the model's input size (NaN for
  a class without examples), "mean_faces": (classes, h, w) mean stored
  images (grey), "counts", "class_names", "method", "layer", "split",
  "step", "workdir"}."""
  opened = open_run(workdir, data_dir=data_dir, manual_dir=manual_dir)
  config = opened.config
  config.evals = ml_collections.ConfigDict(
      {"split": {"split": split, "tta": "none"}})
  step, restored = opened.restore(checkpoint)
  variables = restored["raw"]
  data = setup.load_data(config, with_train=False)
  images, labels = data.eval_splits["split"].images, np.asarray(
      data.eval_splits["split"].labels)
  class_names = tuple(data.info.class_names)
  model = opened.model(len(class_names))
  spec = setup.input_spec(config)
  probe = spec(preprocess.to_unit_float(images[:1]))
  layer = saliency.gradcam_layer(model, variables, probe)

  @jax.jit
  def maps(batch, classes):
    x = spec(preprocess.to_unit_float(batch))
    if layer is None:
      return saliency.gradient_saliency(model, variables, x, classes).maps
    return saliency.grad_cam(model, variables, x, classes, layer=layer).maps

  sums = np.zeros((len(class_names), *probe.shape[1:3]), np.float64)
  for start in range(0, len(labels), batch_size):
    # The last batch padded to the same shape: one compilation.
    batch = np.zeros((batch_size, *images.shape[1:]), images.dtype)
    classes = np.zeros(batch_size, np.int32)
    n = min(batch_size, len(labels) - start)
    batch[:n], classes[:n] = images[start:start + n], labels[start:start + n]
    np.add.at(sums, classes[:n], np.asarray(maps(batch, classes))[:n])
  counts = np.bincount(labels, minlength=len(class_names))
  faces = np.zeros((len(class_names), *images.shape[1:3]), np.float64)
  np.add.at(faces, labels, images.astype(np.float64).mean(axis=-1))
  with np.errstate(invalid="ignore", divide="ignore"):
    means = sums / counts[:, None, None]
    faces /= counts[:, None, None]
  means[counts == 0] = math.nan
  return {"maps": means, "mean_faces": faces, "counts": counts.tolist(),
          "class_names": class_names,
          "method": "gradient" if layer is None else "grad_cam",
          "layer": None if layer is None else "/".join(layer),
          "split": split, "step": step, "workdir": str(workdir)}
