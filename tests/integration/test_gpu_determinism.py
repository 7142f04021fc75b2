"""``parallel.deterministic_gpu``: the XLA flag, set before JAX starts.

The flag only changes GPU kernels; here it is checked where it is decided
(XLA_FLAGS of a fresh process) and recorded (the run's manifest).
"""

import json
import os
import subprocess
import sys

import pytest

from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.train import parallel


def test_the_flag_is_added_once_and_an_explicit_one_is_kept(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  parallel.configure_gpu_determinism(False)
  assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2"
  parallel.configure_gpu_determinism(True)
  parallel.configure_gpu_determinism(True)
  assert os.environ["XLA_FLAGS"].split() == [
      "--xla_force_host_platform_device_count=2",
      parallel.DETERMINISTIC_GPU_FLAG]
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=false")
  parallel.configure_gpu_determinism(True)
  assert os.environ["XLA_FLAGS"] == "--xla_gpu_deterministic_ops=false"


def test_only_a_boolean_is_accepted():
  """From the command line and from a hand-edited config.json alike."""
  config = config_lib.load_config("experiments/quickstart.py")
  with pytest.raises(config_lib.ConfigError, match="expected true or false"):
    config_lib.apply_overrides(config, ["parallel.deterministic_gpu=maybe"])
  saved = json.loads(config_lib.to_json(config))
  saved["parallel"]["deterministic_gpu"] = "yes"
  with pytest.raises(config_lib.ConfigError, match="parallel.deterministic_gpu"):
    config_checks.validate(config_lib.from_dict(saved))


def test_a_run_records_the_flag_in_its_manifest(synthetic_data_dir, tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", "train", "--config",
       "experiments/quickstart.py", "--workdir", str(tmp_path),
       f"--config.input.data_dir={synthetic_data_dir}",
       "--config.input.train_split=train[:128]", "--config.num_epochs=1",
       "--config.evals={'test': {'split': 'test[:64]', 'tta': 'none'}}",
       "--config.parallel.cpu_devices=1",
       "--config.parallel.deterministic_gpu=True"],
      env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  session = json.loads((tmp_path / "manifest.json").read_text())["sessions"][0]
  assert parallel.DETERMINISTIC_GPU_FLAG in session["xla_flags"]
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["parallel"]["deterministic_gpu"] is True
