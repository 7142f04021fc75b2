"""Training strategies (issue 30): each one's defining property.

L2-SVM's gradient, class-balanced weights, mixup / CutMix, the moving
average of the weights, focal and OHEM through a sweep, and exact resume of
a run that mixes and keeps a moving average.
"""

import dataclasses
import functools
import json
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import config as config_lib
from ferjax import config_checks
from ferjax import losses
from ferjax.axis import AXIS
from ferjax.data import mix as mix_lib
from ferjax.evaluate import run_evaluation
from ferjax.experiment import sweep
from ferjax.models import create_model
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.run.run_dir import read_metrics
from ferjax.train import loop
from ferjax.train import setup as setup_lib
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.parallel import Parallel
from helpers import QUICKSTART, REPO, tiny_config, tiny_overrides
from helpers import without_timing

# FER2013's Training split, by class (angry ... neutral): disgust is rare.
FER2013_TRAIN_COUNTS = (3995, 436, 4097, 7215, 4830, 3171, 4965)


# L2-SVM.

def test_l2_svm_gradient_is_the_analytic_squared_hinge_gradient():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(0, 1.5, (32, 7)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 7, (32,)), jnp.int32)
  spec = losses.LossSpec(num_classes=7, name="l2_svm")
  t = 2.0 * np.eye(7)[np.asarray(labels)] - 1.0  # +1 true class, -1 others.
  z = np.asarray(logits, np.float64)
  margin = np.maximum(0.0, 1.0 - t * z)
  np.testing.assert_allclose(losses.per_example(logits, labels, spec),
                             (margin ** 2).sum(-1), rtol=1e-5)
  grad = jax.grad(lambda x: losses.per_example(x, labels, spec).sum())(logits)
  np.testing.assert_allclose(grad, -2.0 * t * margin, rtol=1e-5, atol=1e-6)
  assert (margin == 0).any() and (margin > 0).any()  # Both sides of hinge.


def test_l2_svm_evaluates_on_logits_not_log_probabilities():
  """A margin is not shift invariant: evaluation must not shift it."""
  logits = jnp.asarray([[2.0, -1.5, 0.3]], jnp.float32)
  labels = jnp.asarray([0], jnp.int32)
  spec = losses.LossSpec(num_classes=3, name="l2_svm")
  log_probs = jax.nn.log_softmax(logits)
  np.testing.assert_allclose(
      losses.eval_losses(log_probs, logits, labels, spec),
      losses.per_example(logits, labels, spec))
  ce = losses.LossSpec(num_classes=3)
  np.testing.assert_allclose(
      losses.eval_losses(log_probs, logits + 5.0, labels, ce),
      losses.per_example(logits, labels, ce), rtol=1e-6)


# Class-balanced weights.

def test_effective_number_weights_formula():
  counts = np.asarray(FER2013_TRAIN_COUNTS, np.float64)
  for beta in (0.9, 0.999, 0.9999):
    weights = np.asarray(losses.effective_number_weights(counts, beta))
    raw = (1 - beta) / (1 - beta ** counts)
    np.testing.assert_allclose(weights, raw * 7 / raw.sum(), rtol=1e-12)
    assert weights.sum() == pytest.approx(7)
    if beta > 0.99:  # Smaller betas saturate even at disgust's 436.
      assert np.argmax(weights) == 1 and np.argmin(weights) == 3
  # beta 0: every class alike; beta -> 1: inverse frequency.
  np.testing.assert_allclose(losses.effective_number_weights(counts, 0.0),
                             np.ones(7))
  inverse = (1 / counts) * 7 / (1 / counts).sum()
  np.testing.assert_allclose(
      losses.effective_number_weights(counts, 1 - 1e-9), inverse, rtol=1e-4)
  # Between the two: disgust up-weighted, less than by inverse frequency.
  mid = losses.effective_number_weights(counts, 0.999)
  assert 1 < mid[1] / mid[3] < inverse[1] / inverse[3]


def test_class_balanced_weights_reach_the_loss(synthetic_data_dir):
  """setup computes them from the train split's counts; the loss applies
  them: each example's gradient scales with its class's weight."""
  config = tiny_config(synthetic_data_dir, **{
      "loss.class_weights": "effective_number",
      "loss.class_balance_beta": 0.99})
  config_checks.validate(config)
  data = setup_lib.load_data(config)
  training = setup_lib.training(config, Parallel.from_config(config.parallel),
                                data)
  counts = np.bincount(data.train.labels, minlength=7)
  expected = losses.effective_number_weights(counts, 0.99)
  assert training.spec.loss.class_weights == pytest.approx(expected)

  # Imbalanced counts make unequal weights; one device, a plain mean.
  weights = losses.effective_number_weights((10, 400, 50, 400, 400, 5, 400),
                                            0.99)
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(0, 1, (16, 7)), jnp.float32)
  labels = jnp.asarray(np.arange(16) % 7, jnp.int32)
  spec = losses.LossSpec(num_classes=7, class_weights=weights)
  parallel = Parallel("shard_map", jax.devices()[:1])
  grad = parallel.map(jax.grad(
      lambda x: losses.device_loss(x, (), labels, spec)))(
          parallel.replicate(logits))
  grad = np.asarray(parallel.unreplicate(grad))
  plain = jax.grad(lambda x: losses.per_example(
      x, labels, losses.LossSpec(num_classes=7)).sum())(logits)
  w = np.asarray(weights)[np.asarray(labels)]
  np.testing.assert_allclose(grad, w[:, None] * plain / w.sum(), rtol=1e-5,
                             atol=1e-7)


# Mixup and CutMix.

def _flat_batch(n: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
  """Images each of one distinct grey value, and labels."""
  values = np.linspace(0.05, 0.95, n, dtype=np.float32)
  images = np.broadcast_to(values[:, None, None, None],
                           (n, size, size, 1)).copy()
  return images, (np.arange(n) % 7).astype(np.int32)


def _mix_on(num_devices: int, images: np.ndarray, labels: np.ndarray,
            mix: mix_lib.MixSpec, key: jax.Array):
  """``steps.mix_batch`` of a global batch split over ``num_devices``:
  (mixed global batch, partner labels, lam)."""
  per_device = len(images) // num_devices
  parallel = Parallel("shard_map", jax.devices()[:num_devices])
  spec = steps.TrainSpec(global_batch=len(images),
                         per_device_batch=per_device, steps_per_epoch=1,
                         inputs=None, loss=None, mix=mix)

  def mine(a):
    return jax.lax.dynamic_slice_in_dim(
        a, jax.lax.axis_index(AXIS) * per_device, per_device)

  def fn(x, y):
    mixed, m = steps.mix_batch(key, mine(x), mine(y), spec)
    return (jax.lax.all_gather(mixed, AXIS, tiled=True),
            jax.lax.all_gather(m.partner, AXIS, tiled=True), m.lam)

  out = parallel.map(fn)(parallel.replicate(jnp.asarray(images)),
                         parallel.replicate(jnp.asarray(labels)))
  return jax.device_get(parallel.unreplicate(out))


# With both on, key 3 picks CutMix and key 4 mixup.
@pytest.mark.parametrize("alphas,key", [((0.4, 0.0), 3), ((0.0, 1.0), 3),
                                        ((0.4, 1.0), 3), ((0.4, 1.0), 4)])
def test_mixing_mixes_labels_with_the_images_lambda(alphas, key):
  """Each image is lam of itself and 1 - lam of its partner (the batch
  reversed), the partner's label weighs 1 - lam, and neither depends on the
  device count. With both on, a batch is mixed by one or the other."""
  images, labels = _flat_batch(8)
  mix = mix_lib.MixSpec(mixup_alpha=alphas[0], cutmix_alpha=alphas[1])
  results = [_mix_on(n, images, labels, mix, jax.random.key(key))
             for n in (1, 4)]
  for mixed, partner, lam in results:
    assert 0.02 < lam < 0.98  # A real mix for this key.
    np.testing.assert_array_equal(partner, labels[::-1])
    own, other = images, images[::-1]
    blended = lam * own + (1 - lam) * other
    if alphas[0] and (not alphas[1] or np.allclose(mixed, blended)):
      np.testing.assert_allclose(mixed, lam * own + (1 - lam) * other,
                                 rtol=1e-6)
    else:
      from_partner = np.isclose(mixed, other) & ~np.isclose(own, other)
      # The pasted fraction of every image is exactly 1 - lam.
      np.testing.assert_allclose(from_partner.mean(axis=(1, 2, 3)),
                                 1 - lam, rtol=1e-6)
  for a, b in zip(*results):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_mixed_targets_mix_the_loss_with_the_same_lambda():
  rng = np.random.default_rng(2)
  logits = jnp.asarray(rng.normal(0, 2, (8, 7)), jnp.float32)
  a = jnp.asarray(rng.integers(0, 7, (8,)), jnp.int32)
  b = jnp.asarray(rng.integers(0, 7, (8,)), jnp.int32)
  lam = jnp.float32(0.3)
  for name in ("cross_entropy", "l2_svm"):  # Both linear in the targets.
    spec = losses.LossSpec(num_classes=7, name=name)
    mixed = losses.per_example(logits, a, spec, mix=losses.Mix(b, lam))
    np.testing.assert_allclose(
        mixed, lam * losses.per_example(logits, a, spec) +
        (1 - lam) * losses.per_example(logits, b, spec), rtol=1e-5)
  weights = tuple(float(w) for w in range(1, 8))
  np.testing.assert_allclose(
      losses.example_weights(a, weights, losses.Mix(b, lam)),
      lam * (np.asarray(a) + 1) + (1 - lam) * (np.asarray(b) + 1), rtol=1e-6)


@pytest.mark.parametrize("lam", [0.25, 0.5, 0.84])
def test_cutmix_box_covers_one_minus_lambda(lam):
  """Away from the borders the box has sides sqrt(1 - lam) of the image's;
  clipped at a border, the mixing weight is the area actually pasted."""
  h, w = 40, 30
  areas, clipped = [], 0
  for i in range(40):
    key = jax.random.key(i)
    box = np.asarray(mix_lib.cutmix_mask(key, jnp.float32(lam), h, w))
    rows, cols = np.nonzero(box)
    # A solid rectangle.
    assert box.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    side_h = np.floor(np.sqrt(1 - lam) * h)
    side_w = np.floor(np.sqrt(1 - lam) * w)
    if box.sum() == side_h * side_w:
      areas.append(box.mean())
    else:
      clipped += 1
      assert box.sum() < side_h * side_w
    _, own = mix_lib.cutmix(key, jnp.zeros((2, h, w, 1)),
                            jnp.ones((2, h, w, 1)), jnp.float32(lam))
    assert float(own) == pytest.approx(1 - box.mean())
  assert areas and clipped
  np.testing.assert_allclose(areas, 1 - lam, atol=2 * (h + w) / (h * w))


# The moving average of the weights.

def test_train_step_keeps_the_moving_average(synthetic_data_dir):
  decay = 0.9
  tx = optax.sgd(0.1)
  init_model = create_model("lenet5", num_classes=7)
  state = state_lib.create(model=init_model, tx=tx, input_shape=(32, 32, 3),
                           seed=0, ema=True)
  jax.tree.map(np.testing.assert_array_equal, state.ema["params"],
               state.params)
  inputs = steps.InputSpec(image_size=(32, 32), channels=3, mean=(0.5,),
                           std=(0.25,))
  spec = steps.TrainSpec(global_batch=16, per_device_batch=4,
                         steps_per_epoch=4, inputs=inputs,
                         loss=losses.LossSpec(num_classes=7),
                         ema_decay=decay)
  parallel = Parallel("shard_map", jax.devices()[:4])
  step = parallel.map(functools.partial(
      steps.train_step, model=create_model("lenet5", num_classes=7,
                                           bn_axis_name=AXIS),
      tx=tx, schedule=optax.constant_schedule(0.1), spec=spec))
  rng = np.random.default_rng(0)
  data = parallel.replicate({
      "images": jnp.asarray(rng.integers(0, 255, (64, 48, 48, 1), np.uint8)),
      "labels": jnp.asarray(rng.integers(0, 7, (64,)), jnp.int32)})
  perm = parallel.replicate(jnp.arange(64, dtype=jnp.int32))
  ema = jax.device_get(state.ema["params"])
  current = parallel.replicate(state)
  for _ in range(3):
    current, _ = step(current, data, perm)
    host = jax.device_get(parallel.unreplicate(current))
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema,
                       host.params)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5,
                                   atol=1e-7), host.ema["params"], ema)
  assert not np.allclose(host.ema["params"]["Dense_0"]["kernel"],
                         host.params["Dense_0"]["kernel"])


@flax.struct.dataclass
class _StateBeforeEma:
  """TrainState as ferjax wrote it before the moving average existed."""

  step: Any
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: Any
  plateau: Any


def test_a_checkpoint_from_before_the_moving_average_restores(tmp_path):
  tx = optax.sgd(0.1, momentum=0.9)
  model = create_model("lenet5", num_classes=7)
  state = state_lib.create(model=model, tx=tx, input_shape=(32, 32, 3),
                           seed=1)
  fields = {f.name: getattr(state, f.name)
            for f in dataclasses.fields(_StateBeforeEma)}
  old = jax.tree.map(lambda x: np.asarray(x) + 1, _StateBeforeEma(**fields))
  with checkpoint_lib.Checkpoints(tmp_path / "ckpt") as ckpt:
    ckpt.save(7, old)
    ckpt.wait()
    template = state_lib.create(model=model, tx=tx, input_shape=(32, 32, 3),
                                seed=0)
    restored = ckpt.restore(7, template)
    assert restored.ema == {}
    jax.tree.map(np.testing.assert_array_equal,
                 {k: getattr(restored, k) for k in fields},
                 {k: getattr(old, k) for k in fields})
    # A run that keeps a moving average cannot resume it: it has none.
    with_ema = state_lib.create(model=model, tx=tx, input_shape=(32, 32, 3),
                                seed=0, ema=True)
    with pytest.raises(ValueError, match="holds no 'ema'"):
      ckpt.restore(7, with_ema)
    with pytest.raises(ValueError, match="ema_decay=0"):
      ckpt.restore_variables(7, "ema")
    np.testing.assert_array_equal(
        ckpt.restore_variables(7)["params"]["Dense_0"]["kernel"],
        old.params["Dense_0"]["kernel"])


def test_eval_weights_need_a_moving_average(synthetic_data_dir):
  config = tiny_config(synthetic_data_dir, evals=(
      "{'test': {'split': 'test[:300]', 'tta': 'none', 'weights': 'ema'}}"))
  with pytest.raises(config_lib.ConfigError,
                     match=r"evals\.test\.weights.*ema_decay"):
    config_checks.validate(config)
  bad = tiny_config(synthetic_data_dir, evals=(
      "{'test': {'split': 'test[:300]', 'weights': 'average'}}"))
  with pytest.raises(config_lib.ConfigError, match="raw, ema"):
    config_checks.validate(bad)


# Focal loss and OHEM, swept.

def test_a_sweep_override_of_focal_gamma_and_ohem_reaches_the_step(
    synthetic_data_dir, tmp_path):
  """A trial's focal_gamma and ohem_fraction are the step's: its first loss
  is the focal loss with that gamma over that fraction of the batch."""
  experiment = tmp_path / "focal_sweep.py"
  experiment.write_text(
      '"""ferjax sweep --config focal_sweep.py"""\n'
      "import sys\n"
      f"sys.path.insert(0, {str(REPO / 'experiments')!r})\n"
      "from quickstart import get_config\n"
      "from ferjax.experiment import sweep\n"
      "def get_sweep():\n"
      "  return sweep.product(sweep.axis('loss.focal_gamma', [0.5, 3.0]),\n"
      "                       sweep.axis('loss.ohem_fraction', [0.25]))\n")
  common = tiny_overrides(
      synthetic_data_dir, **{"loss.name": "focal", "input.augment": "{}"})
  trials = sweep.plan(str(experiment), common, tmp_path / "sweep")
  assert [t.overrides for t in trials] == [
      {"loss.focal_gamma": 0.5, "loss.ohem_fraction": 0.25},
      {"loss.focal_gamma": 3.0, "loss.ohem_fraction": 0.25}]
  first_losses = []
  for trial in trials:
    config = sweep.trial_config(str(experiment), common, trial)
    config_checks.validate(config)
    training = setup_lib.training(config,
                                  Parallel.from_config(config.parallel))
    assert training.spec.loss.focal_gamma == trial.overrides[
        "loss.focal_gamma"]
    assert training.spec.loss.ohem_fraction == 0.25
    host = training.init_state()
    n, data, order = next(iter(training.batches().iterate(0, 1)))
    _, metrics = training.train_step(training.parallel.replicate(host), data,
                                     order, n)
    loss = float(training.parallel.unreplicate(metrics)["loss"])

    # The same loss, computed here from the definitions.
    idx = np.asarray(training.parallel.unreplicate(order))[:64]
    split = training.data.train
    x = training.inputs(jnp.asarray(split.images[idx], jnp.float32) / 255.0)
    logits = training.init_model.apply(
        {"params": host.params}, x)
    log_p = jax.nn.log_softmax(logits)
    picked = np.asarray(log_p)[np.arange(64), split.labels[idx]]
    gamma = trial.overrides["loss.focal_gamma"]
    focal = -((1 - np.exp(picked)) ** gamma) * picked
    expected = np.sort(focal)[-16:].mean()  # The hardest 25% of 64.
    assert loss == pytest.approx(expected, rel=1e-4)
    first_losses.append(loss)
  assert first_losses[0] != pytest.approx(first_losses[1], rel=1e-3)


# Exact resume with mixup, CutMix and the moving average.

MIX_EMA = {"input.mix.mixup_alpha": 0.4, "input.mix.cutmix_alpha": 1.0,
           "optimizer.ema_decay": 0.9,
           "evals": ("{'test': {'split': 'test[:300]', 'tta': 'none'}, "
                     "'test_ema': {'split': 'test[:300]', 'tta': 'none', "
                     "'weights': 'ema'}}")}


def _final_state(workdir: pathlib.Path) -> Any:
  config = config_lib.from_json((workdir / "config.json").read_text())
  setup = setup_lib.training(config, Parallel.from_config(config.parallel))
  with checkpoint_lib.Checkpoints(workdir / "checkpoints",
                                  read_only=True) as ckpt:
    return ckpt.restore(ckpt.latest_step(), setup.init_state())


def _comparable(events: list[dict], resumed_window: int) -> list[dict]:
  return without_timing([e for e in events if e["split"] != "train" or
                         e["step"] != resumed_window])


@pytest.mark.timeout(900)  # Three tiny trainings, two of them processes.
def test_kill_9_then_resume_with_mixing_and_ema_is_bit_identical(
    synthetic_data_dir, tmp_path):
  """SIGKILL mid-training, run the same command again: the same numbers as
  an uninterrupted run, moving average and evaluations of it included."""
  reference = tmp_path / "reference"
  config = tiny_config(synthetic_data_dir, **MIX_EMA)
  results = loop.train_and_evaluate(config, reference)
  # The moving average is evaluated, and it is not the raw weights.
  assert results["test"]["loss"] != results["test_ema"]["loss"]
  final = _final_state(reference)
  ema_eval = run_evaluation.evaluate_run(str(reference), checkpoint="latest")
  # Evaluation adds its calibration measures; the metrics are training's.
  assert {name: {k: v for k, v in r.items() if k != "calibration"}
          for name, r in ema_eval["results"].items()} == results

  workdir = tmp_path / "resumed"
  args = [sys.executable, "-m", "ferjax.cli", "train", "--config", QUICKSTART,
          "--workdir", str(workdir)] + [
              f"--config.{o}"
              for o in tiny_overrides(synthetic_data_dir, **MIX_EMA)]
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  ckpts = workdir / "checkpoints"
  deadline = time.monotonic() + 240
  while time.monotonic() < deadline and proc.poll() is None:
    done = [int(p.name) for p in ckpts.glob("*") if p.name.isdigit()]
    if done and max(done) >= 10:
      break
    time.sleep(0.05)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with checkpoint_lib.Checkpoints(ckpts, read_only=True) as ckpt:
    interrupted_at = ckpt.latest_step()
  assert 0 < interrupted_at < 32

  proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert f"resumed from step {interrupted_at}" in proc.stderr
  window = interrupted_at // 4 * 4 + 4
  assert _comparable(read_metrics(workdir), window) == _comparable(
      read_metrics(reference), window)
  resumed = _final_state(workdir)
  jax.tree.map(np.testing.assert_array_equal, resumed.params, final.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.ema, final.ema)
  manifest = json.loads((workdir / "manifest.json").read_text())
  assert [s["start_step"] for s in manifest["sessions"]] == [0,
                                                             interrupted_at]
