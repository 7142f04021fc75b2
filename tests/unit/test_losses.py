"""Class-weighted loss: split over devices, it equals the one-device mean."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.models import create_model
from ferjax import losses
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
                         steps_per_epoch=n // batch, inputs=inputs,
                         loss=losses.LossSpec(num_classes=7,
                                              class_weights=weights))
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


def test_focal_with_gamma_zero_is_cross_entropy():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(0, 3, (32, 7)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 7, (32,)), jnp.int32)
  reference = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  for smoothing in (0.0, 0.1):
    spec = losses.LossSpec(num_classes=7, name="focal", focal_gamma=0.0,
                           label_smoothing=smoothing)
    ce = losses.per_example(logits, labels, losses.LossSpec(
        num_classes=7, label_smoothing=smoothing))
    np.testing.assert_allclose(losses.per_example(logits, labels, spec), ce,
                               rtol=1e-6)
  np.testing.assert_allclose(
      losses.per_example(logits, labels, losses.LossSpec(num_classes=7)),
      reference, rtol=1e-6)
  focal = losses.per_example(logits, labels, losses.LossSpec(
      num_classes=7, name="focal", focal_gamma=2.0))
  p_true = np.exp(-np.asarray(reference))
  np.testing.assert_allclose(focal, (1 - p_true) ** 2 * reference, rtol=1e-4)


def _hardest_on(num_devices: int, values: np.ndarray,
                fraction: float) -> np.ndarray:
  """The global OHEM mask, each device choosing for its own rows."""
  per = len(values) // num_devices

  def pick(all_values):
    own = jax.lax.dynamic_slice(
        all_values, (jax.lax.axis_index(AXIS) * per,), (per,))
    mask = losses.hardest(own, fraction)
    placed = jax.lax.dynamic_update_slice(
        jnp.zeros_like(all_values), mask, (jax.lax.axis_index(AXIS) * per,))
    return jax.lax.psum(placed, AXIS)

  parallel = Parallel("shard_map", jax.devices()[:num_devices])
  out = parallel.map(pick)(parallel.replicate(jnp.asarray(values)))
  return np.asarray(parallel.unreplicate(out))


def test_ohem_picks_the_same_examples_on_1_and_4_devices():
  """A global top-k: not the hardest quarter of each device's share."""
  values = np.array([0.1, 5.0, 4.0, 0.2, 3.0, 3.0, 0.3, 0.4,
                     6.0, 7.0, 8.0, 0.5, 0.6, 3.0, 0.7, 0.8], np.float32)
  one, four = _hardest_on(1, values, 0.25), _hardest_on(4, values, 0.25)
  np.testing.assert_array_equal(one, four)
  # 8, 7, 6, 5: all but one of them on devices 2 and 0; per-device top-1
  # would pick 5, 3 (the first of the tie), 8 and 3.
  assert np.flatnonzero(one).tolist() == [1, 8, 9, 10]
  ties = _hardest_on(4, values, 6 / 16)  # 8, 7, 6, 5, 4 and the first 3.
  assert np.flatnonzero(ties).tolist() == [1, 2, 4, 8, 9, 10]
  np.testing.assert_array_equal(_hardest_on(4, values, 1.0), np.ones(16))


@pytest.mark.parametrize("num_devices,fraction", [(4, 1.0), (1, 0.25),
                                                  (4, 0.25)])
def test_ohem_loss_is_the_mean_over_the_hardest(num_devices, fraction):
  """With fraction 1, cross-entropy; else the mean of the hardest k."""
  rng = np.random.default_rng(0)
  n, batch = 64, 16
  images = rng.integers(0, 255, (n, 48, 48, 1), dtype=np.uint8)
  labels = rng.integers(0, 7, (n,)).astype(np.int32)
  inputs = steps.InputSpec(image_size=(32, 32), channels=3, mean=(0.5,),
                           std=(0.25,))
  spec = steps.TrainSpec(
      global_batch=batch, per_device_batch=batch // num_devices,
      steps_per_epoch=n // batch, inputs=inputs,
      loss=losses.LossSpec(num_classes=7, ohem_fraction=fraction))
  tx = optax.sgd(0.0)
  init_model = create_model("lenet5", num_classes=7)
  state = state_lib.create(model=init_model, tx=tx, input_shape=(32, 32, 3),
                           seed=0)
  parallel = Parallel("shard_map", jax.devices()[:num_devices])
  step = parallel.map(functools.partial(
      steps.train_step, model=create_model("lenet5", num_classes=7,
                                           bn_axis_name=AXIS),
      tx=tx, schedule=optax.constant_schedule(0.0), spec=spec))
  perm = np.arange(n, dtype=np.int32)
  data = {"images": jnp.asarray(images), "labels": jnp.asarray(labels)}
  _, metrics = step(parallel.replicate(state), parallel.replicate(data),
                    parallel.replicate(perm))

  logits = init_model.apply({"params": state.params},
                            inputs(images[:batch] / 255.0))
  ce = np.asarray(optax.softmax_cross_entropy_with_integer_labels(
      logits, labels[:batch]))
  k = int(np.ceil(fraction * batch))
  expected = float(np.sort(ce)[::-1][:k].mean())
  loss = float(np.asarray(parallel.unreplicate(metrics)["loss"]))
  assert loss == pytest.approx(expected, rel=1e-5)
  if fraction < 1:
    assert expected > ce.mean() + 1e-3  # Mining changed the objective.


@pytest.mark.parametrize("field,value,message", [
    ("name", "hinge", "loss.name: expected one of cross_entropy, focal"),
    ("focal_gamma", -1.0, "loss.focal_gamma"),
    ("ohem_fraction", 0.0, "loss.ohem_fraction"),
    ("ohem_fraction", 1.5, "loss.ohem_fraction"),
])
def test_bad_loss_settings_are_config_errors(field, value, message):
  config = config_lib.base_config()
  config.loss[field] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_checks.validate(config)
