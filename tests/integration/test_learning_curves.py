"""benchmarks/learning_curves.py: both frameworks' curves, JSON and plot."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_both_frameworks_from_the_same_weights_give_the_same_curves(
    synthetic_data_dir, tmp_path):
  """LeNet-5 at 48x48 grey, the VGG recipe's SGD and plateau schedule, no
  dropout to differ: two seeds of 2 epochs agree to float32 rounding."""
  out, png = tmp_path / "curves.json", tmp_path / "curves.png"
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks/learning_curves.py"),
       "--config", str(REPO / "experiments/fer2013_vgg.py:depth=11"),
       "--config.input.dataset=synthetic_fer",
       "--config.input.builder_config=None", "--config.model.name=lenet5",
       "--data-dir", synthetic_data_dir, "--train-split", "train[:256]",
       "--val-split", "test[:128]", "--steps", "8", "--log-every", "2",
       "--seeds", "0,1", "--out", str(out), "--plot", str(png)],
      env={**os.environ, "XLA_FLAGS":
           "--xla_force_host_platform_device_count=1"},
      capture_output=True, text=True, timeout=600, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert len(result["per_seed"]) == 2
  ours, theirs = result["summary"]["ferjax"], result["summary"]["torch"]
  assert ours["steps"] == [2, 4, 6, 8] and ours["epochs"] == [1.0, 2.0]
  np.testing.assert_allclose(ours["train_loss_mean"],
                             theirs["train_loss_mean"], rtol=1e-4)
  # The seeds differ (initialisation and batch order): a real spread.
  assert max(ours["train_loss_std"]) > 1e-3
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
