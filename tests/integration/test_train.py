"""The training core: equal results across backends, exact resume, eval."""

import json
import signal
import time

import jax
import numpy as np
import pytest

from helpers import (QUICKSTART, final_params, run_cli, tiny_config,
                     tiny_overrides, without_timing)
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.data import loading
from ferjax.run.run_dir import read_metrics
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import loop
from ferjax.train import setup as setup_lib


def test_four_simulated_devices():
  assert jax.device_count() == 4


def test_loss_falls_and_accuracy_beats_chance(reference_run):
  workdir, results = reference_run
  train = [e for e in read_metrics(workdir) if e["split"] == "train"]
  assert train[-1]["loss"] < 0.8 * train[0]["loss"]
  assert results["test"]["accuracy"] > 2 / 7


@pytest.mark.parametrize("backend,num_devices,rtol,flips", [
    ("pmap", None, 1e-5, 0),
    ("shard_map", 1, 5e-3, 5)])
def test_backends_and_device_counts_agree(reference_run, synthetic_data_dir,
                                          tmp_path, backend, num_devices,
                                          rtol, flips):
  """The same per-device program under pmap; the same batches on 1 device.

  pmap runs the identical per-device computation, so it agrees to float
  precision. One device sums the gradient in another order than a psum over
  four: the first steps agree to float precision, and 32 SGD steps amplify
  the difference to ~1e-3 relative, which can flip a few of the 300 test
  predictions that sit on a decision boundary.
  """
  workdir, results = reference_run
  config = tiny_config(synthetic_data_dir, **{
      "parallel.backend": backend, "parallel.num_devices": num_devices})
  other = loop.train_and_evaluate(config, tmp_path)
  np.testing.assert_allclose(other["test"]["loss"], results["test"]["loss"],
                             rtol=rtol)
  assert abs(other["test"]["accuracy"] - results["test"]["accuracy"]) <= (
      flips / 300 + 1e-9)
  train = lambda d: [e["loss"] for e in read_metrics(d) if e["split"] == "train"]
  np.testing.assert_allclose(train(tmp_path), train(workdir), rtol=rtol)
  np.testing.assert_allclose(train(tmp_path)[0], train(workdir)[0], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=10 * rtol),
               final_params(tmp_path), final_params(workdir))


def test_same_config_twice_is_identical(reference_run, synthetic_data_dir,
                                        tmp_path):
  workdir, results = reference_run
  again = loop.train_and_evaluate(tiny_config(synthetic_data_dir), tmp_path)
  assert again == results
  assert without_timing(read_metrics(tmp_path)) == without_timing(
      read_metrics(workdir))
  jax.tree.map(np.testing.assert_array_equal, final_params(tmp_path),
               final_params(workdir))


def test_kill_9_then_resume_is_bit_identical(reference_run,
                                             synthetic_data_dir, tmp_path):
  """SIGKILL mid-training, run the same command again: same final numbers."""
  workdir, results = reference_run
  args = ["train", "--config", QUICKSTART, "--workdir", str(tmp_path)] + [
      f"--config.{o}" for o in tiny_overrides(synthetic_data_dir)]
  proc = run_cli(args)
  ckpts = tmp_path / "checkpoints"
  deadline = time.monotonic() + 240
  ckpts.mkdir(parents=True)
  while time.monotonic() < deadline and proc.poll() is None:
    steps = [int(p.name) for p in ckpts.glob("*") if p.name.isdigit()]
    if steps and max(steps) >= 10:
      break
    time.sleep(0.05)
  assert proc.poll() is None, "the run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  interrupted_at = checkpoint_lib.Checkpoints(ckpts, read_only=True).latest_step()
  assert 0 < interrupted_at < 32

  proc = run_cli(args)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  assert f"resumed from step {interrupted_at}" in err
  # Every evaluation and every full logging window after the resumed one
  # matches; the window in which the run resumed averages fewer steps.
  resumed_window = interrupted_at // 4 * 4 + 4
  comparable = lambda events: without_timing(
      [e for e in events if e["split"] != "train" or e["step"] != resumed_window])
  assert comparable(read_metrics(tmp_path)) == comparable(read_metrics(workdir))
  jax.tree.map(np.testing.assert_array_equal, final_params(tmp_path),
               final_params(workdir))
  manifest = json.loads((tmp_path / "manifest.json").read_text())
  assert [s["start_step"] for s in manifest["sessions"]] == [0, interrupted_at]


def test_cli_eval_prints_json_metrics(reference_run):
  workdir, results = reference_run
  proc = run_cli(["eval", "--workdir", str(workdir), "--json"])
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err
  printed = json.loads(out.strip().splitlines()[-1])
  assert printed["results"]["test"]["accuracy"] == results["test"]["accuracy"]
  assert printed["step"] == 32


def test_run_directory_records(reference_run):
  workdir, _ = reference_run
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["name"] == "lenet5"
  assert len(config["input"]["mean"]) == 1
  manifest = json.loads((workdir / "manifest.json").read_text())
  session = manifest["sessions"][0]
  assert session["device_count"] == 4 and session["process_count"] == 1
  assert session["versions"]["jax"] == jax.__version__
  assert manifest["dataset"]["name"] == "synthetic_fer"
  assert manifest["dataset"]["split_sizes_used"] == {"train": 1024,
                                                    "test": 300}
  # In the run's own folder: TensorBoard names the run by it.
  assert list(workdir.glob("events.out.tfevents.*"))
  assert not (workdir / "tensorboard").exists()
  events = read_metrics(workdir)
  test_events = [e for e in events if e["split"] == "test"]
  assert [e["step"] for e in test_events] == [16, 32]


def test_eval_counts_every_example_once(synthetic_data_dir):
  """37 examples over 4 devices x 8: padded and masked, never dropped."""
  from ferjax.train.split_evaluator import Evaluator
  config = tiny_config(synthetic_data_dir)
  setup = setup_lib.training(config,
                             loop.Parallel.from_config(config.parallel))
  builder = loading.prepared_builder("synthetic_fer",
                                     data_dir=synthetic_data_dir)
  split = loading.read_split(builder, "test[:37]")
  state = setup.init_state()
  evaluator = Evaluator(
      "few", split, eval_config=config.evals.test, batch_size=32,
      parallel=setup.parallel, model=setup.model, inputs=setup.inputs,
      class_names=setup.class_names,
      loss=setup_lib.eval_loss(setup.config, len(setup.class_names)))
  result = evaluator(setup.parallel.replicate(loop.variables(state)))
  assert result["num_examples"] == 37
  assert np.sum(result["confusion_matrix"]) == 37
  logits = setup.init_model.apply(
      {"params": state.params}, setup.inputs(split.images / 255.0))
  expected = float(np.mean(np.argmax(logits, -1) == split.labels))
  assert result["accuracy"] == pytest.approx(expected, abs=1e-6)
  counts = np.bincount(split.labels, minlength=7)
  assert np.sum(result["confusion_matrix"], axis=1).tolist() == counts.tolist()


@pytest.mark.parametrize("override,message", [
    ("--config.num_epohcs=3", "unknown field"),
    ("--config.batch_size=many", "expected an integer"),
    ("--config.parallel.backend=mpi", "config.parallel.backend"),
    ("--config.model.name=resnet50", "config.model.name"),
    ("--config.optimizer.momentum=1.5", "config.optimizer.momentum"),
    ("--config.checkpoint.best_metric=val/accuracy",
     "config.checkpoint.best_metric"),
])
def test_bad_config_fails_before_any_work(tmp_path, override, message):
  proc = run_cli(["train", "--config", QUICKSTART, "--workdir",
                  str(tmp_path / "run"), override])
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == 2
  assert message in err
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field,value", [
    ("input.mean", (float("nan"),)),
    ("input.std", (0.2, float("inf"), 0.2)),
    ("input.augment.rotation", float("nan")),
    ("loss.aux_weight", float("inf")),
    ("loss.focal_gamma", float("nan")),
    ("loss.class_weights", (1.0,) * 6 + (float("nan"),)),
    ("optimizer.weight_decay", float("inf")),
    ("optimizer.grad_clip_norm", float("nan")),
    ("optimizer.warmup_epochs", float("inf")),
])
def test_non_finite_numbers_are_config_errors(field, value):
  """No range check catches NaN (every comparison is False) nor, for a
  lower bound alone, infinity; each would give meaningless numbers."""
  config = config_lib.load_config(QUICKSTART).to_dict()
  config_lib.set_field(config, field, value)
  with pytest.raises(config_lib.ConfigError,
                     match=rf"config\.{field}: expected .*finite"):
    config_checks.validate(config_lib.from_dict(config))


def test_batch_must_divide_over_devices(synthetic_data_dir, tmp_path):
  config = tiny_config(synthetic_data_dir, batch_size=30)
  with pytest.raises(ValueError, match="does not divide evenly over 4"):
    loop.train_and_evaluate(config, tmp_path)


def test_resume_refuses_a_different_experiment(reference_run,
                                               synthetic_data_dir):
  workdir, _ = reference_run
  config = tiny_config(synthetic_data_dir, seed=1)
  with pytest.raises(ValueError, match="different config.*seed"):
    loop.train_and_evaluate(config, workdir)


def test_streaming_gives_the_same_run_as_in_memory(reference_run,
                                                   synthetic_data_dir,
                                                   tmp_path):
  """Batches read from disk by a prefetch thread: identical numbers."""
  workdir, results = reference_run
  config = tiny_config(synthetic_data_dir, **{"input.pipeline": "stream"})
  streamed = loop.train_and_evaluate(config, tmp_path)
  assert streamed == results
  assert without_timing(read_metrics(tmp_path)) == without_timing(
      read_metrics(workdir))
  manifest = json.loads((tmp_path / "manifest.json").read_text())
  assert manifest["dataset"]["pipeline"] == "stream"


def test_reduce_on_plateau_follows_the_eval_metric(synthetic_data_dir,
                                                    tmp_path):
  """patience 0: each eval that does not improve halves the learning rate."""
  config = tiny_config(synthetic_data_dir, **{
      "num_epochs": 3, "optimizer.schedule": "plateau",
      "optimizer.warmup_epochs": 0.0, "optimizer.learning_rate": 0.05,
      "optimizer.plateau.metric": "test/loss", "optimizer.plateau.mode": "max",
      "optimizer.plateau.patience": 0, "optimizer.plateau.factor": 0.5,
      "checkpoint.best_metric": "test/accuracy"})
  loop.train_and_evaluate(config, tmp_path)
  events = read_metrics(tmp_path)
  losses = [e["loss"] for e in events if e["split"] == "test"]
  # The first eval sets the best; in "max" mode the falling loss of the
  # second is no improvement, so epoch 3 trains at half the rate.
  assert losses[1] < losses[0]
  rates = {e["step"]: e["learning_rate"] for e in events
           if e["split"] == "train"}
  assert all(lr == pytest.approx(0.05) for s, lr in rates.items() if s <= 32)
  assert all(lr == pytest.approx(0.025) for s, lr in rates.items() if s > 32)


def test_an_eval_with_every_epochs_runs_on_its_own_schedule_and_at_the_end(
    synthetic_data_dir, tmp_path):
  """Costly evals (ten-crop) need not run after every epoch."""
  config = tiny_config(synthetic_data_dir, **{
      "num_epochs": 3,
      "evals": "{'test': {'split': 'test[:300]', 'tta': 'none'}, "
               "'rare': {'split': 'test[:100]', 'tta': 'none', "
               "'every_epochs': 2}}",
      "checkpoint.best_metric": "test/accuracy"})
  loop.train_and_evaluate(config, tmp_path)
  events = read_metrics(tmp_path)
  steps = {name: [e["step"] for e in events if e["split"] == name]
           for name in ("test", "rare")}
  assert steps["test"] == [16, 32, 48]
  assert steps["rare"] == [32, 48]


@pytest.mark.parametrize("evals,message", [
    ("{'test': {'split': 'test', 'every_epochs': 0}}", "evals.test.every_epochs"),
    ("{'test': {'split': 'test', 'every_epochs': 2}}",
     "checkpoint.best_metric reads this evaluation"),
])
def test_eval_schedule_is_checked(synthetic_data_dir, evals, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_checks.validate(tiny_config(synthetic_data_dir, evals=evals,
                                    **{"checkpoint.best_metric":
                                       "test/accuracy"}))
