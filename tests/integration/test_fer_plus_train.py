"""`ferjax train` on a FER+ fixture in the paper's soft label modes."""

import csv
import json

import numpy as np
import pytest

from ferjax import cli
from ferjax.data import fer_plus
from helpers import QUICKSTART, fer_rows, write_csv


def _write_fer_plus(root):
  """fer2013.csv and fer2013new.csv, row for row: each image 6 votes for
  one emotion and 4 for the next, a 0.6/0.4 distribution."""
  rows = fer_rows(n=48, usages=("Training", "PublicTest"))
  root.mkdir()
  write_csv(root / "fer2013.csv", rows)
  with open(root / "fer2013new.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["Usage", "Image name", *fer_plus.VOTE_COLUMNS])
    for i, (_, usage, _) in enumerate(rows):
      votes = [0] * len(fer_plus.VOTE_COLUMNS)
      votes[i % 8], votes[(i + 1) % 8] = 6, 4
      writer.writerow([usage, f"fer{i:07d}.png", *votes])


@pytest.mark.parametrize("mode,soft", [("probability", "sample"),
                                       ("crossentropy", "distribution")])
def test_train_on_fer_plus_soft_labels_records_the_mode(tmp_path, mode, soft):
  _write_fer_plus(tmp_path / "m")
  workdir = tmp_path / "run"
  overrides = {
      "input.dataset": "fer_plus", "input.builder_config": mode,
      "input.data_dir": tmp_path / "d", "input.manual_dir": tmp_path / "m",
      "evals": "{'test': {'split': 'public_test', 'tta': 'none'}}",
      "num_epochs": 2, "batch_size": 8, "parallel.cpu_devices": None}
  assert cli.main(["train", "--config", QUICKSTART, "--workdir", str(workdir),
                   *(f"--config.{k}={v}" for k, v in overrides.items())]
                  ) == 0
  manifest = json.loads((workdir / "manifest.json").read_text())
  assert manifest["dataset"]["builder_config"] == mode
  assert manifest["dataset"]["soft_labels"] == soft
  assert manifest["dataset"]["split_sizes_used"]["train"] == 24
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["input"]["builder_config"] == mode
  assert np.isfinite(
      [json.loads(line)["loss"] for line in
       (workdir / "metrics.jsonl").read_text().splitlines()
       if '"loss"' in line]).all()
