"""`ferjax reproduce`: a real tiny run reproduces exactly; differences are
reported with the version and device changes that explain them."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from ferjax.commands import reproduce as reproduce_command
from ferjax import config as config_lib
from ferjax.experiment import reproduce
from helpers import QUICKSTART, REPO, TINY, tiny_config



def make_run(path: pathlib.Path, *, finished: bool = True, jax: str = "0.10.2",
             devices: int = 4, accuracy: float = 0.5, speed: float = 100.0,
             steps: tuple[int, ...] = (10, 20)) -> None:
  """A run directory with one train and one test event per step."""
  path.mkdir(parents=True)
  (path / "config.json").write_text(config_lib.to_json(
      config_lib.base_config()))
  session = {"start_time": "2025-01-01T00:00:00+00:00", "start_step": 0,
             "end_time": "2025-01-01T01:00:00+00:00" if finished else None,
             "command": ["ferjax", "train"], "python": "3.11.7",
             "platform": "Linux", "backend": "cpu", "device_kind": "cpu",
             "device_count": devices, "local_device_count": devices,
             "process_count": 1, "versions": {"jax": jax, "numpy": "2.4.6"},
             "git": {"commit": "abc", "dirty": False}}
  (path / "manifest.json").write_text(json.dumps(
      {"seed": 0, "dataset": {}, "sessions": [session]}))
  events = []
  for step in steps:
    events.append({"step": step, "split": "train", "loss": 1.5,
                   "images_per_second": speed})
    events.append({"step": step, "split": "test", "accuracy": accuracy,
                   "loss": 1.0, "confusion_matrix": [[3, 1], [0, 4]]})
  (path / "metrics.jsonl").write_text(
      "".join(json.dumps(e) + "\n" for e in events))


def test_identical_runs_compare_identical(tmp_path):
  make_run(tmp_path / "a")
  make_run(tmp_path / "b", speed=55.0)  # Timing is not a result.
  comparison = reproduce.compare_runs(tmp_path / "a", tmp_path / "b")
  assert comparison.identical and comparison.events_compared == 4
  assert not comparison.environment_changes
  assert "REPRODUCED: identical" in reproduce.format_summary(comparison)


def test_differences_come_with_their_explanations(tmp_path):
  make_run(tmp_path / "a")
  make_run(tmp_path / "b", jax="0.10.3", devices=1, accuracy=0.52,
           steps=(10, 20, 30))
  lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
  first_test = json.loads(lines[1])
  first_test["accuracy"] = 0.5  # Only later evaluations differ.
  first_test["confusion_matrix"] = [[2, 2], [0, 4]]
  lines[1] = json.dumps(first_test)
  (tmp_path / "b" / "metrics.jsonl").write_text("\n".join(lines) + "\n")

  c = reproduce.compare_runs(tmp_path / "a", tmp_path / "b")
  assert not c.identical
  assert c.differences == [
      "step 10 test: confusion_matrix differs (max |diff| 1)",
      "step 20 test: accuracy 0.5 -> 0.52 (diff +0.02)"]
  assert c.extra == ["step 30 train", "step 30 test"] and not c.missing
  assert c.environment_changes == ["device_count: 4 -> 1",
                                   "local_device_count: 4 -> 1",
                                   "jax: 0.10.2 -> 0.10.3"]
  summary = reproduce.format_summary(c)
  assert "first run as: ferjax train\n" in summary
  assert "metrics: 2 of 4 events differ" in summary
  assert "environment changes that can explain them:" in summary
  assert summary.endswith("NOT REPRODUCED: the metrics differ")


def test_refuses_what_it_cannot_reproduce(tmp_path, capsys):
  make_run(tmp_path / "running", finished=False)
  make_run(tmp_path / "done")
  (tmp_path / "taken").mkdir()
  (tmp_path / "taken" / "file").write_text("x")
  cases = {
      (str(tmp_path / "running"),): "has not finished",
      (str(tmp_path / "nothing"),): "not a ferjax run directory",
      (str(tmp_path / "done"), "--workdir", str(tmp_path / "taken")):
          "is not empty",
      (str(tmp_path / "done"), "--config.optimizer.learning_rate=0.1"):
          "may only change where it runs",
  }
  for argv, message in cases.items():
    assert reproduce_command.main(list(argv)) == 2
    assert message in capsys.readouterr().err
  assert not (tmp_path / "done.reproduce").exists()


def test_a_reproduction_refused_before_training_leaves_no_directory(
    tmp_path, capsys):
  from ferjax import pretrained
  new = tmp_path / "again"
  code = reproduce_command.main([
      str(pretrained.FER2013_LENET5), "--workdir", str(new),
      f"--config.input.data_dir={tmp_path / 'no_data'}"])
  assert code == 2
  assert "ferjax reproduce: error: " in capsys.readouterr().err
  assert not new.exists()  # Not even a directory holding only .lock.


def test_reproduces_a_tiny_run_exactly(synthetic_data_dir, tmp_path,
                                       tmp_path_factory):
  cache = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
         "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  run_dir, experiment = tmp_path / "run", tmp_path / "experiment.py"
  shutil.copy(QUICKSTART, experiment)
  train = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", "train", "--config",
       str(experiment),
       "--workdir", str(run_dir), *(f"--config.{o}" for o in [
           *TINY, f"input.data_dir={synthetic_data_dir}"])],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert train.returncode == 0, train.stderr
  # The output explains itself: the final step's and the best checkpoint's
  # metrics, and what the silent first step was doing.
  assert train.stdout.startswith("final step ")
  assert "best checkpoint: step" in train.stdout
  assert "selected by test/accuracy" in train.stdout
  assert "compiling the train step (first step only)" in train.stderr
  assert "\r" not in train.stderr  # Not a terminal: no progress bar.
  experiment.unlink()  # Reproduced from config.json, not the file.
  proc = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", "reproduce", str(run_dir)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "metrics: all 3 events identical" in proc.stdout
  assert "REPRODUCED: identical" in proc.stdout
  new = tmp_path / "run.reproduce"
  result = json.loads((new / reproduce.RESULT_FILE).read_text())
  assert result["identical"] and result["events_compared"] == 3
  manifest = json.loads((new / "manifest.json").read_text())
  assert manifest["sessions"][0]["command"][:3] == [
      "ferjax", "reproduce", str(run_dir)]


def test_default_rerun_lies_outside_the_sweep(tmp_path):
  sweep_dir = tmp_path / "sweep"
  (sweep_dir / "seed=0").mkdir(parents=True)
  (sweep_dir / "sweep.json").write_text("{}")
  assert reproduce._new_workdir(sweep_dir / "seed=0") == (
      tmp_path / "sweep.reproduce" / "seed=0")
  (tmp_path / "sweep.reproduce" / "seed=0").mkdir(parents=True)
  assert reproduce._new_workdir(sweep_dir / "seed=0") == (
      tmp_path / "sweep.reproduce2" / "seed=0")
  (tmp_path / "lone").mkdir()
  assert reproduce._new_workdir(tmp_path / "lone") == (
      tmp_path / "lone.reproduce")


def test_the_cpu_devices_in_force_are_what_a_config_records(caplog):
  from ferjax.train import parallel
  config = config_lib.base_config()
  config.parallel.cpu_devices = 2
  resolved = parallel.cpu_devices_in_force(config)
  assert resolved.parallel.cpu_devices == 4
  assert config.parallel.cpu_devices == 2  # Never written into.
  assert ("XLA_FLAGS (--xla_force_host_platform_device_count) sets 4 CPU "
          "devices, overriding config.parallel.cpu_devices=2") in caplog.text
  config.parallel.cpu_devices = 4
  assert parallel.cpu_devices_in_force(config) is config


@pytest.mark.slow
def test_an_xla_flags_device_count_is_recorded_and_reproduced(
    synthetic_data_dir, tmp_path, caplog):
  """XLA_FLAGS (4 devices here, see conftest) wins over cpu_devices=2: the
  run's config records 4, and its reproduction without the flag uses 4,
  also for a run whose config still says 2."""
  from ferjax.train import loop
  assert "device_count=4" in os.environ["XLA_FLAGS"]
  run_dir = tmp_path / "run"
  loop.train_and_evaluate(tiny_config(
      synthetic_data_dir, **{"parallel.cpu_devices": 2,
                             "input.train_split": "train[:512]",
                             "num_epochs": 1}), run_dir)
  assert ("sets 4 CPU devices, overriding config.parallel.cpu_devices=2"
          in caplog.text)
  config = json.loads((run_dir / "config.json").read_text())
  manifest = json.loads((run_dir / "manifest.json").read_text())
  assert config["parallel"]["cpu_devices"] == 4
  assert manifest["sessions"][-1]["device_count"] == 4
  # As a run written before ferjax recorded the override: the manifest's
  # device count, not the config's, is what the original used.
  config["parallel"]["cpu_devices"] = 2
  (run_dir / "config.json").write_text(json.dumps(config))
  env = {**os.environ, "XLA_FLAGS": ""}
  proc = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", "reproduce", str(run_dir)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "REPRODUCED: identical" in proc.stdout
  assert "device_count: " not in proc.stdout
