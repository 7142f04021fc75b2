"""`ferjax train` on a FER+ fixture in the paper's soft label modes."""

import csv
import json

import numpy as np

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


def _train(tmp_path, workdir, mode, **extra):
  overrides = {
      "input.dataset": "fer_plus", "input.builder_config": mode,
      "input.data_dir": tmp_path / "d", "input.manual_dir": tmp_path / "m",
      "evals": "{'test': {'split': 'public_test', 'tta': 'none'}}",
      "num_epochs": 2, "batch_size": 12, "log_every_steps": 2,
      "parallel.cpu_devices": None, **extra}
  assert cli.main(["train", "--config", QUICKSTART, "--workdir", str(workdir),
                   *(f"--config.{k}={v}" for k, v in overrides.items())]
                  ) == 0
  return json.loads((workdir / "manifest.json").read_text())


def _train_losses(workdir):
  return [r["loss"] for r in map(json.loads, (
      workdir / "metrics.jsonl").read_text().splitlines())
          if r.get("split") == "train"]


def test_train_on_fer_plus_probability_draws_labels_and_says_so(tmp_path):
  _write_fer_plus(tmp_path / "m")
  manifest = _train(tmp_path, tmp_path / "run", "probability")
  assert manifest["dataset"]["builder_config"] == "probability"
  assert manifest["dataset"]["soft_labels"] == "sample"
  assert manifest["dataset"]["split_sizes_used"]["train"] == 24
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["input"]["builder_config"] == "probability"
  losses = _train_losses(tmp_path / "run")
  assert losses and np.isfinite(losses).all()


def test_fer_plus_crossentropy_streamed_trains_as_in_memory(tmp_path):
  _write_fer_plus(tmp_path / "m")
  memory = _train(tmp_path, tmp_path / "memory", "crossentropy",
                  **{"input.pipeline": "memory"})
  # Two steps per call: the streamed targets stacked as the images are.
  stream = _train(tmp_path, tmp_path / "stream", "crossentropy",
                  **{"input.pipeline": "stream", "train.steps_per_call": 2})
  assert memory["dataset"]["soft_labels"] == "distribution"
  assert stream["dataset"]["pipeline"] == "stream"
  want = _train_losses(tmp_path / "memory")
  assert want and _train_losses(tmp_path / "stream") == want
