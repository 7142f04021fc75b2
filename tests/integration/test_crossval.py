"""`ferjax crossval` on a CK+48-layout fixture: every fold, mean and std."""

import json
import pathlib

import numpy as np
import pytest

from ferjax import config as config_lib
from ferjax.run.run_dir import read_metrics
from ferjax.train import crossval
from helpers import write_ck_plus

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_crossval_trains_every_fold_and_reports_mean_and_std(tmp_path):
  total = write_ck_plus(tmp_path / "CK+48")
  config = config_lib.load_config(str(REPO / "experiments/ckplus_lenet.py:runlocal"))
  config = config_lib.apply_overrides(config, [
      f"input.manual_dir={tmp_path / 'CK+48'}",
      f"input.data_dir={tmp_path / 'tfds'}", "num_epochs=1", "batch_size=8",
      "parallel.cpu_devices=None", "parallel.num_devices=1"])
  summary = crossval.run_folds(config, str(tmp_path / "cv"))

  finals = []
  tested = 0
  for fold in range(3):
    fold_dir = tmp_path / "cv" / f"fold_{fold}"
    finals.append([e for e in read_metrics(fold_dir)
                   if e["split"] == "test"][-1]["accuracy"])
    sizes = json.loads((fold_dir / "manifest.json").read_text())[
        "dataset"]["split_sizes_used"]
    assert sizes["train"] + sizes["test"] == total
    tested += sizes["test"]
  assert tested == total  # Every example is tested in exactly one fold.
  acc = summary["metrics"]["test/accuracy"]
  assert acc["folds"] == pytest.approx(finals)
  assert acc["mean"] == pytest.approx(np.mean(finals))
  assert acc["std"] == pytest.approx(np.std(finals, ddof=1))
  saved = json.loads((tmp_path / "cv" / "crossval.json").read_text())
  assert saved == summary


def test_crossval_needs_the_kfold_protocol(tmp_path):
  config = config_lib.load_config(str(REPO / "experiments/quickstart.py"))
  with pytest.raises(ValueError, match="needs 'kfold'"):
    crossval.run_folds(config, str(tmp_path))
