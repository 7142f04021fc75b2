"""Soft targets (FER+'s vote distributions): the losses, the label draw and
the train step that uses them."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import losses
from ferjax.models import create_model
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.parallel import AXIS, Parallel

C = 8


def _logits_labels(n=6, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(size=(n, C)), jnp.float32),
          jnp.asarray(rng.integers(0, C, n), jnp.int32))


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_one_hot_targets_give_the_integer_label_loss(name, smoothing):
  logits, labels = _logits_labels()
  spec = losses.LossSpec(num_classes=C, name=name, label_smoothing=smoothing)
  one_hot = jax.nn.one_hot(labels, C)
  np.testing.assert_allclose(
      losses.per_example(logits, labels, spec, targets=one_hot),
      losses.per_example(logits, labels, spec), rtol=1e-6)


def test_cross_entropy_against_a_distribution_is_its_expected_nll():
  logits, labels = _logits_labels()
  soft = np.random.default_rng(1).dirichlet(np.ones(C), size=6)
  spec = losses.LossSpec(num_classes=C)
  got = losses.per_example(logits, labels, spec,
                           targets=jnp.asarray(soft, jnp.float32))
  log_q = np.asarray(jax.nn.log_softmax(logits))
  np.testing.assert_allclose(got, -(soft * log_q).sum(-1), rtol=1e-5)
  assert not np.allclose(got, losses.per_example(logits, labels, spec))


def test_mixed_soft_targets_mix_the_partners_distributions():
  logits, labels = _logits_labels()
  rng = np.random.default_rng(2)
  soft = jnp.asarray(rng.dirichlet(np.ones(C), size=6), jnp.float32)
  partner = labels[::-1]
  mix = losses.Mix(partner=partner, lam=jnp.float32(0.3),
                   partner_targets=soft[::-1])
  spec = losses.LossSpec(num_classes=C)
  want = (0.3 * losses.per_example(logits, labels, spec, targets=soft) +
          0.7 * losses.per_example(logits, partner, spec,
                                   targets=soft[::-1]))
  np.testing.assert_allclose(
      losses.per_example(logits, labels, spec, mix=mix, targets=soft), want,
      rtol=1e-5)


def test_drawn_labels_follow_the_distribution_and_repeat_per_key():
  n = 20000
  p = np.array([0.5, 0.3, 0.2, 0, 0, 0, 0, 0], np.float32)
  targets = jnp.tile(jnp.asarray(p), (n, 1))
  positions = jnp.arange(n)
  key = jax.random.key(7)
  drawn = np.asarray(steps.draw_labels(key, targets, positions))
  share = np.bincount(drawn, minlength=C) / n
  np.testing.assert_allclose(share, p, atol=0.015)  # ~4 sigma at n=20000.
  np.testing.assert_array_equal(
      drawn, steps.draw_labels(key, targets, positions))
  # Each example's draw depends on its position alone, not its neighbours.
  np.testing.assert_array_equal(
      drawn[5:9], steps.draw_labels(key, targets[5:9], positions[5:9]))
  assert not np.array_equal(
      drawn, steps.draw_labels(jax.random.key(8), targets, positions))


@pytest.mark.parametrize("soft_labels", ["sample", "distribution"])
def test_train_step_trains_on_the_split_targets(soft_labels):
  rng = np.random.default_rng(3)
  n = batch = 16
  images = rng.integers(0, 255, (n, 32, 32, 1), dtype=np.uint8)
  stored = rng.integers(0, C, n).astype(np.int32)
  other = (stored + 1 + rng.integers(0, C - 1, n)).astype(np.int32) % C
  # "sample" from one-hot targets of other labels must train on those.
  targets = (np.eye(C, dtype=np.float32)[other] if soft_labels == "sample"
             else rng.dirichlet(np.ones(C), size=n).astype(np.float32))
  inputs = steps.InputSpec(image_size=(32, 32), channels=1, mean=(0.5,),
                           std=(0.25,))
  spec = steps.TrainSpec(global_batch=batch, per_device_batch=batch,
                         steps_per_epoch=1, inputs=inputs,
                         loss=losses.LossSpec(num_classes=C),
                         soft_labels=soft_labels)
  tx = optax.sgd(0.0)
  init_model = create_model("lenet5", num_classes=C)
  state = state_lib.create(model=init_model, tx=tx, input_shape=(32, 32, 1),
                           seed=0)
  parallel = Parallel("shard_map", jax.devices()[:1])
  step = parallel.map(functools.partial(
      steps.train_step, model=create_model("lenet5", num_classes=C,
                                           bn_axis_name=AXIS),
      tx=tx, schedule=optax.constant_schedule(0.0), spec=spec))
  data = {"images": images, "labels": stored, "targets": targets}
  _, metrics = step(parallel.replicate(state), parallel.replicate(data),
                    parallel.replicate(np.arange(n, dtype=np.int32)))
  metrics = parallel.unreplicate(metrics)

  logits = init_model.apply({"params": state.params}, inputs(images / 255.0))
  log_q = np.asarray(jax.nn.log_softmax(logits))
  assert float(metrics["loss"]) == pytest.approx(
      float(-(targets * log_q).sum(-1).mean()), rel=1e-5)
  assert float(metrics["loss"]) != pytest.approx(
      float(-log_q[np.arange(n), stored].mean()), rel=1e-3)
  # Accuracy stays on the stored (majority) labels.
  assert float(metrics["accuracy"]) == pytest.approx(
      float((log_q.argmax(-1) == stored).mean()))
