"""Schedules, reduce-on-plateau and checkpoint retention."""

import ml_collections
import numpy as np
import pytest

from ferjax import config as config_lib
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import optimizer


def opt_config(**fields) -> ml_collections.ConfigDict:
  opt = config_lib.base_config().optimizer
  opt.update(fields)
  return opt


def test_piecewise_schedule_decays_at_epoch_boundaries():
  sched = optimizer.learning_rate_schedule(
      opt_config(schedule="piecewise", learning_rate=0.1,
                 boundaries_epochs=(2, 4), decay_factor=0.5),
      steps_per_epoch=10, total_steps=60)
  assert [float(sched(s)) for s in (0, 19, 20, 39, 40, 59)] == pytest.approx(
      [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_warms_up_then_decays_to_zero():
  sched = optimizer.learning_rate_schedule(
      opt_config(schedule="cosine", learning_rate=0.2, warmup_epochs=1.0),
      steps_per_epoch=10, total_steps=100)
  values = np.array([float(sched(s)) for s in range(101)])
  assert values[0] == 0.0 and values[10] == pytest.approx(0.2)
  assert np.all(np.diff(values[:11]) > 0) and np.all(np.diff(values[10:]) <= 0)
  assert values[100] == pytest.approx(0.0, abs=1e-7)


def test_plateau_reduces_after_patience_evals_without_improvement():
  state = optimizer.plateau_init()
  scales = []
  for value in [0.5, 0.6, 0.6, 0.59, 0.58, 0.7, 0.69, 0.68, 0.67]:
    state = optimizer.plateau_update(state, value, mode="max", factor=0.5,
                                     patience=2, min_scale=0.1)
    scales.append(float(state.scale))
  # 0.6 -> three evals without improvement (> patience 2) -> x0.5; 0.7 is a
  # new best; three more without improvement -> x0.5 again.
  assert scales == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25]


@pytest.mark.parametrize("value", [0.41, 1 / 3, 0.6])
def test_plateau_counts_an_equal_metric_as_no_improvement(value):
  """``best`` is float32: 0.41 and 1/3 round down there, 0.6 up; an equal
  accuracy must never count as an improvement (torch without threshold)."""
  state = optimizer.plateau_init()
  for _ in range(3):
    state = optimizer.plateau_update(state, value, mode="max", factor=0.5,
                                     patience=1, min_scale=0.1)
  assert float(state.scale) == 0.5


def test_checkpoints_keep_the_latest_and_the_best(tmp_path):
  ckpt = checkpoint_lib.Checkpoints(tmp_path, keep=2, best_metric="val/acc")
  for step, acc in enumerate([0.1, 0.9, 0.2, 0.3, 0.4], start=1):
    ckpt.save(step, {"w": np.full((3,), step, np.float32)}, {"val/acc": acc})
  ckpt.wait()
  assert ckpt.all_steps() == [2, 4, 5]
  assert ckpt.best_step() == 2
  restored = ckpt.restore(2, {"w": np.zeros((3,), np.float32)})
  np.testing.assert_array_equal(restored["w"], [2, 2, 2])
  ckpt.close()
