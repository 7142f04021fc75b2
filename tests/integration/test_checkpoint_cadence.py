"""``checkpoint.every_epochs``: fewer saves, never the best or the last lost."""

import json

from ferjax.run.checkpoint import Checkpoints
from ferjax.train import loop

from helpers import tiny_config


def test_saves_every_nth_epoch_the_last_and_each_new_best(synthetic_data_dir,
                                                          tmp_path):
  config = tiny_config(synthetic_data_dir, **{
      "num_epochs": 5, "checkpoint.every_epochs": 3, "checkpoint.keep": 10,
      "checkpoint.every_steps": 0, "input.train_split": "train[:512]",
      # The lowest accuracy as "best": while the model learns, few epochs
      # set a new best, so the cadence shows.
      "checkpoint.best_mode": "min"})
  loop.train_and_evaluate(config, tmp_path)
  events = [json.loads(line) for line in
            (tmp_path / "metrics.jsonl").read_text().splitlines()]
  tests = [(e["step"], e["accuracy"]) for e in events if e["split"] == "test"]
  assert len(tests) == 5
  expected, best = set(), None
  for epoch, (step, accuracy) in enumerate(tests, start=1):
    if epoch % 3 == 0 or epoch == 5 or best is None or accuracy < best:
      expected.add(step)
      best = accuracy if best is None else min(best, accuracy)
  saved = set(Checkpoints(tmp_path / "checkpoints", read_only=True).all_steps())
  assert saved == expected
  assert len(saved) < 5
