"""``train.steps_per_call``: k steps per dispatch, the numbers of k = 1."""

import shutil

import jax
import numpy as np
import pytest

from helpers import final_params, tiny_config, without_timing
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.run.run_dir import read_metrics
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import loop
from ferjax.train import input_pipeline
from ferjax.train import setup as setup_lib

# 16 steps an epoch; a window of 8 steps and a save every 4, so a save
# falls inside a logging window and carries its first half.
_CADENCE = {"log_every_steps": 8, "checkpoint.every_steps": 4,
            "checkpoint.keep": 20}


def _config(data_dir: str, k, **extra):
  return tiny_config(data_dir, **{**_CADENCE, "train.steps_per_call": k,
                                  **extra})


@pytest.fixture(scope="module")
def one_step_runs(synthetic_data_dir, tmp_path_factory):
  """One step per call, by backend: what every k must reproduce."""
  runs = {}
  for backend in ("shard_map", "pmap"):
    workdir = tmp_path_factory.mktemp(f"k1_{backend}")
    results = loop.train_and_evaluate(
        _config(synthetic_data_dir, 1, **{"parallel.backend": backend}),
        workdir)
    runs[backend] = workdir, results
  return runs


def _assert_same_run(workdir, results, reference):
  ref_dir, ref_results = reference
  assert results == ref_results
  assert without_timing(read_metrics(workdir)) == without_timing(
      read_metrics(ref_dir))
  jax.tree.map(np.testing.assert_array_equal, final_params(workdir),
               final_params(ref_dir))
  ours = checkpoint_lib.Checkpoints(workdir / "checkpoints", read_only=True)
  theirs = checkpoint_lib.Checkpoints(ref_dir / "checkpoints", read_only=True)
  assert ours.all_steps() == theirs.all_steps()


@pytest.mark.parametrize("backend,k,pipeline", [
    ("shard_map", 2, "memory"),
    ("shard_map", "auto", "memory"),
    ("pmap", 2, "memory"),
    ("pmap", "auto", "stream"),
    ("shard_map", 4, "stream")])
def test_k_steps_per_call_give_the_numbers_of_one(one_step_runs,
                                                  synthetic_data_dir,
                                                  tmp_path, backend, k,
                                                  pipeline):
  """Params, metrics.jsonl, evaluations and saved steps are bit-identical."""
  config = _config(synthetic_data_dir, k, **{
      "parallel.backend": backend, "input.pipeline": pipeline})
  results = loop.train_and_evaluate(config, tmp_path)
  _assert_same_run(tmp_path, results, one_step_runs[backend])


def test_resume_mid_window_with_k_steps_per_call(one_step_runs,
                                                 synthetic_data_dir,
                                                 tmp_path):
  """From a save at step 20 (mid-epoch, mid-window): the uninterrupted run."""
  config = _config(synthetic_data_dir, 2)
  loop.train_and_evaluate(config, tmp_path)
  ckpts = tmp_path / "checkpoints"
  later = [s for s in checkpoint_lib.Checkpoints(
      ckpts, read_only=True).all_steps() if s > 20]
  assert later
  for step in later:
    shutil.rmtree(ckpts / str(step))
  results = loop.train_and_evaluate(config, tmp_path)
  assert read_metrics(tmp_path)[-1]["step"] == 32
  _assert_same_run(tmp_path, results, one_step_runs["shard_map"])


def test_auto_is_the_largest_divisor_of_every_boundary(synthetic_data_dir):
  config = _config(synthetic_data_dir, "auto")
  assert setup_lib.steps_per_call(config, 16) == 4
  config.checkpoint.every_steps = 0
  assert setup_lib.steps_per_call(config, 16) == 8
  config.log_every_steps = 50
  assert setup_lib.steps_per_call(config, 224) == 10
  # FER2013's LeNet-5 epoch (201 steps, prime to the window) no longer
  # forces one step per call.
  config.log_every_steps = 32
  assert setup_lib.steps_per_call(config, 201) == 16
  config.log_every_steps = 64
  assert setup_lib.steps_per_call(config, 2048) == 16
  assert config_checks.MAX_STEPS_PER_CALL == 16


def test_call_plan_ends_calls_on_multiples_of_k_and_epoch_ends():
  plan = list(input_pipeline.call_plan(0, 26, 13, 4))
  assert plan == [(0, 4), (4, 4), (8, 4), (12, 1),
                  (13, 2), (15, 1), (16, 4), (20, 4), (24, 2)]
  # Resuming from a save (a multiple of k) continues the same plan.
  assert list(input_pipeline.call_plan(16, 26, 13, 4)) == plan[-3:]
  # A k that divides the epoch: calls of k only, as before.
  assert {n for _, n in input_pipeline.call_plan(0, 64, 16, 8)} == {8}
  # Every length is k or a power of two, however the epoch falls.
  lengths = {n for _, n in input_pipeline.call_plan(0, 201 * 40, 201, 10)}
  assert lengths == {10, 8, 4, 2, 1}


@pytest.mark.parametrize("backend,pipeline", [
    ("shard_map", "memory"),
    pytest.param("pmap", "stream", marks=pytest.mark.slow)])
def test_auto_on_a_prime_epoch_gives_the_numbers_of_one(
    synthetic_data_dir, tmp_path, backend, pipeline):
  """13 steps an epoch (prime): 'auto' runs k = 4 and the epoch's remainder
  in shorter calls, bit-identical to one step per call."""
  runs = {}
  for k in (1, "auto"):
    workdir = tmp_path / str(k)
    config = _config(synthetic_data_dir, k, **{
        "input.train_split": "train[:832]", "parallel.backend": backend,
        "input.pipeline": pipeline})
    runs[k] = workdir, loop.train_and_evaluate(config, workdir)
  assert setup_lib.steps_per_call(config, 13) == 4
  _assert_same_run(*runs["auto"], runs[1])


@pytest.mark.parametrize("k,message", [
    (3, r"train.steps_per_call: expected a divisor of log_every_steps \(8\)"),
    (0, r"train.steps_per_call: expected 'auto' or a positive integer"),
    ("two", r"train.steps_per_call: expected 'auto' or a positive integer")])
def test_a_k_that_splits_a_boundary_is_a_config_error(synthetic_data_dir,
                                                      tmp_path, k, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    loop.train_and_evaluate(_config(synthetic_data_dir, k), tmp_path)
  assert not (tmp_path / "checkpoints").exists()


def test_a_k_that_splits_an_epoch_is_refused(synthetic_data_dir, tmp_path):
  config = _config(synthetic_data_dir, 6, log_every_steps=6,
                   **{"checkpoint.every_steps": 0})
  with pytest.raises(config_lib.ConfigError,
                     match=r"train.steps_per_call: expected a divisor of the "
                           r"16 steps of an epoch"):
    loop.train_and_evaluate(config, tmp_path)


def test_mixing_ema_and_ohem_under_k_steps_per_call(synthetic_data_dir,
                                                    tmp_path):
  """What lives in the step (Mixup/CutMix, EMA, OHEM's global top-k) runs
  in the scan with the keys and numbers of one step per call."""
  extra = {"input.mix.mixup_alpha": 0.4, "input.mix.cutmix_alpha": 1.0,
           "optimizer.ema_decay": 0.9, "loss.ohem_fraction": 0.5,
           "num_epochs": 1, "input.train_split": "train[:512]"}
  runs = {}
  for k in (1, 2):
    workdir = tmp_path / f"k{k}"
    runs[k] = workdir, loop.train_and_evaluate(
        _config(synthetic_data_dir, k, **extra), workdir)
  _assert_same_run(*runs[2], runs[1])
