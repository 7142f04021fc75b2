"""Class-weighted loss: split over devices, it equals the one-device mean."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax.models import create_model
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.parallel import AXIS, Parallel


@pytest.mark.parametrize("num_devices", [1, 4])
def test_weighted_loss_is_the_global_weighted_mean(num_devices):
  rng = np.random.default_rng(0)
  n, batch = 64, 16
  images = rng.integers(0, 255, (n, 48, 48, 1), dtype=np.uint8)
  labels = rng.integers(0, 7, (n,)).astype(np.int32)
  weights = tuple(float(w) for w in rng.uniform(0.5, 3.0, 7))
  inputs = steps.InputSpec(image_size=(32, 32), channels=3, mean=(0.5,),
                           std=(0.25,))
  spec = steps.TrainSpec(global_batch=batch,
                         per_device_batch=batch // num_devices,
                         steps_per_epoch=n // batch, num_classes=7,
                         inputs=inputs, class_weights=weights)
  tx = optax.sgd(0.0)
  init_model = create_model("lenet5", num_classes=7)
  state = state_lib.create(model=init_model, tx=tx, input_shape=(32, 32, 3),
                           seed=0)
  parallel = Parallel("shard_map", jax.devices()[:num_devices])
  step = parallel.map(functools.partial(
      steps.train_step, model=create_model("lenet5", num_classes=7,
                                           bn_axis_name=AXIS),
      tx=tx, schedule=optax.constant_schedule(0.0), spec=spec))
  perm = np.arange(n, dtype=np.int32)[::-1].copy()
  data = {"images": jnp.asarray(images), "labels": jnp.asarray(labels)}
  _, metrics = step(parallel.replicate(state), parallel.replicate(data),
                    parallel.replicate(perm))

  idx = perm[:batch]
  logits = init_model.apply({"params": state.params},
                            inputs(images[idx] / 255.0))
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx])
  w = np.asarray(weights)[labels[idx]]
  expected = float((w * ce).sum() / w.sum())
  loss = float(np.asarray(parallel.unreplicate(metrics)["loss"]))
  assert loss == pytest.approx(expected, rel=1e-5)
  assert abs(expected - float(ce.mean())) > 1e-3  # The weights matter here.
