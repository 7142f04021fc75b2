"""ferjax's real train step on a fixed random dataset, for the benchmarks.

One construction serves ``family_step.py``, ``train_step.py`` and
``loop_vs_step.py``: the state from ``state_lib.create``, the step from
``Parallel.map(steps.train_step, donate_argnums=(0,))``, and the data and the
epoch's permutation replicated on the devices as the input pipeline leaves
them, so a timed step costs what a training step costs.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ferjax.models import create_model
from ferjax import losses
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.parallel import AXIS, Parallel

NUM_CLASSES = 7
# How the benchmarks run ferjax on a CPU host unless told otherwise
# (``config.parallel.cpu_devices``, ``.num_devices`` and ``.backend``);
# README.md has the measurements behind them. LeNet-5's small layers run best
# at 32-128 images per device; the larger families gain nothing past two.
CPU_DEVICES = 4
CPU_DEVICES_BY_MODEL = {"lenet5": 4}
CPU_DEVICES_OTHERWISE = 2
CPU_BACKEND = "pmap"


def devices_for(name: str) -> list[jax.Device]:
  """The devices model ``name`` trains on by default on this host."""
  if jax.default_backend() != "cpu":
    return jax.devices()
  count = CPU_DEVICES_BY_MODEL.get(name, CPU_DEVICES_OTHERWISE)
  return jax.devices()[:count]


def default_backend() -> str:
  """``CPU_BACKEND`` on a CPU host, ferjax's own default elsewhere."""
  return CPU_BACKEND if jax.default_backend() == "cpu" else "shard_map"
# Global batches in the fixed dataset: enough that consecutive steps gather
# different rows, few enough to stay small on the device.
DATASET_BATCHES = 4


def random_dataset(batch: int, input_shape: tuple[int, int, int],
                   seed: int = 0) -> dict[str, np.ndarray]:
  """uint8 images and int32 labels, ``DATASET_BATCHES`` global batches."""
  rng = np.random.default_rng(seed)
  n = batch * DATASET_BATCHES
  return {"images": rng.integers(0, 255, (n, *input_shape), dtype=np.uint8),
          "labels": rng.integers(0, NUM_CLASSES, (n,)).astype(np.int32)}


@dataclasses.dataclass
class Step:
  """A compiled train step and its arguments; ``__call__`` runs one step."""

  fn: Callable[..., Any]
  state: Any
  data: Any
  perm: Any

  def __call__(self) -> dict[str, jax.Array]:
    """Runs one step, keeps the new (donated) state, returns the metrics."""
    self.state, metrics = self.fn(self.state, self.data, self.perm)
    return metrics


def train_spec(batch: int, input_shape: tuple[int, int, int],
               parallel: Parallel) -> steps.TrainSpec:
  """The spec of a run on ``parallel`` with fixed normalisation constants."""
  h, w, c = input_shape
  if batch % parallel.num_devices:
    raise ValueError(f"--batch {batch} does not divide over "
                     f"{parallel.num_devices} devices")
  inputs = steps.InputSpec(image_size=(h, w), channels=c, mean=(0.5,),
                           std=(0.25,))
  return steps.TrainSpec(global_batch=batch,
                         per_device_batch=batch // parallel.num_devices,
                         steps_per_epoch=DATASET_BATCHES, inputs=inputs,
                         loss=losses.LossSpec(num_classes=NUM_CLASSES))


def build(name: str, *, batch: int, input_shape: tuple[int, int, int],
          parallel: Parallel, dtype: jnp.dtype = jnp.float32,
          augment: steps.AugmentFn | None = None,
          stored_shape: tuple[int, int, int] | None = None,
          fusion: dict[str, Any] | None = None,
          model_kwargs: dict[str, Any] | None = None) -> Step:
  """ferjax's SGD-with-momentum step for model ``name``, ready to call.

  ``dtype`` is the model's compute dtype (parameters stay float32), as
  ``config.model.dtype`` sets it. The dataset holds ``stored_shape`` images
  (default ``input_shape``) that the step resizes to ``input_shape``.
  ``fusion`` is a ``config.model.fusion`` (``None``: the plain model);
  ``model_kwargs`` are ``config.model.kwargs`` (e.g. AlexNet's stride).
  """
  spec = train_spec(batch, input_shape, parallel)
  schedule = optax.constant_schedule(0.01)
  tx = optax.sgd(schedule, momentum=0.9)
  state = state_lib.create(
      model=create_model(name, num_classes=NUM_CLASSES, dtype=dtype,
                         fusion=fusion, **(model_kwargs or {})), tx=tx,
      input_shape=input_shape, seed=0)
  fn = parallel.map(functools.partial(
      steps.train_step, model=create_model(
          name, num_classes=NUM_CLASSES, dtype=dtype, bn_axis_name=AXIS,
          fusion=fusion, **(model_kwargs or {})),
      tx=tx, schedule=schedule, spec=spec, augment=augment),
                    donate_argnums=(0,))
  n = batch * DATASET_BATCHES
  return Step(fn=fn, state=parallel.replicate(state),
              data=parallel.replicate(random_dataset(
                  batch, stored_shape or input_shape)),
              perm=parallel.replicate(np.arange(n, dtype=np.int32)))
