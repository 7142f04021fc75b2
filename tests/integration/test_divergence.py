"""A diverging run stops with one clear error; JSON outputs stay strict JSON."""

import json
import math
import shutil

import jax
import numpy as np
import pytest

from ferjax import cli
from ferjax import config as config_lib
from ferjax import finite_json
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import setup as setup_lib
from ferjax.train.parallel import Parallel
from helpers import QUICKSTART, tiny_overrides


def _strict_json(text: str):
  def refuse(constant: str):
    raise ValueError(f"not JSON: {constant}")
  return json.loads(text, parse_constant=refuse)


def _train_args(workdir, data_dir, **overrides) -> list[str]:
  return ["train", "--config", QUICKSTART, "--workdir", str(workdir)] + [
      f"--config.{o}" for o in tiny_overrides(data_dir, **overrides)]


def _all_finite(state) -> bool:
  """Variables and optimizer state (the plateau starts with best=NaN)."""
  tree = (state.params, state.batch_stats, state.opt_state)
  return all(np.isfinite(x).all() for x in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.inexact))


def test_diverging_run_stops_and_keeps_only_finite_checkpoints(
    synthetic_data_dir, tmp_path, capsys):
  workdir = tmp_path / "run"
  args = _train_args(workdir, synthetic_data_dir, **{
      "optimizer.learning_rate": 1e30, "checkpoint.every_steps": 1,
      "log_every_steps": 1})
  assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert "ferjax train: error: training diverged" in err
  assert "Traceback" not in err
  ckpt = checkpoint_lib.Checkpoints(workdir / "checkpoints", read_only=True)
  steps = ckpt.all_steps()
  assert steps and max(steps) < 32, steps  # Stopped long before the end.
  assert f"the latest checkpoint (step {max(steps)})" in err
  config = config_lib.from_json((workdir / "config.json").read_text())
  setup = setup_lib.training(config, Parallel.from_config(config.parallel))
  for step in steps:
    assert _all_finite(ckpt.restore(step, setup.init_state())), step
  events = [_strict_json(line) for line in
            (workdir / "metrics.jsonl").read_text().splitlines()]
  assert events and all(e["split"] == "train" for e in events)
  for event in events:
    assert all(math.isfinite(v) for v in event.values()
               if isinstance(v, (int, float))), event


def test_infinite_learning_rate_is_a_config_error(synthetic_data_dir,
                                                  tmp_path, capsys):
  args = _train_args(tmp_path / "run", synthetic_data_dir,
                     **{"optimizer.learning_rate": "inf"})
  assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert "config.optimizer.learning_rate: expected a finite number > 0" in err
  assert not (tmp_path / "run").exists()


def test_eval_of_a_nan_checkpoint_is_an_error_naming_it(reference_run,
                                                        tmp_path, capsys):
  """A checkpoint from before the divergence check: its NaN weights would
  give chance accuracy and loss NaN (issue 27 item 2)."""
  reference, _ = reference_run
  workdir = tmp_path / "run"
  shutil.copytree(reference, workdir)
  config = config_lib.from_json((workdir / "config.json").read_text())
  setup = setup_lib.training(config, Parallel.from_config(config.parallel))
  ckpt = checkpoint_lib.Checkpoints(workdir / "checkpoints")
  step = ckpt.latest_step()
  state = ckpt.restore(step, setup.init_state())
  state = state.replace(params=jax.tree.map(
      lambda x: np.full_like(x, np.nan), state.params))
  ckpt.save(step + 1, state)
  ckpt.wait()
  ckpt.close()
  assert cli.main(["eval", "--workdir", str(workdir),
                   "--checkpoint", "latest", "--json"]) == 2
  captured = capsys.readouterr()
  assert not captured.out
  assert f"checkpoints/{step + 1}: ['params']" in captured.err
  assert "non-finite values" in captured.err


def test_finite_json_replaces_only_non_finite_numbers():
  value = {"a": [1.5, float("nan"), (float("-inf"), 2)], "b": "NaN", "c": 3}
  assert _strict_json(finite_json.dumps(value)) == {
      "a": [1.5, None, [None, 2]], "b": "NaN", "c": 3}


@pytest.mark.parametrize("backend", ["pmap", "shard_map"])
def test_state_check_reads_one_replica_on_one_device(backend):
  """No cross-device program (a collective that can miss XLA:CPU's
  rendezvous under load) and still every leaf checked."""
  from ferjax.train import divergence  # pylint: disable=g-import-not-at-top
  parallel = Parallel(backend=backend, devices=jax.devices()[:4])
  tree = parallel.replicate({"w": np.ones((3, 2), np.float32),
                             "b": np.zeros((2,), np.float32)})
  one = divergence._one_replica(tree)
  for leaf in jax.tree.leaves(one):
    assert leaf.devices() == {jax.devices()[0]}
  assert bool(divergence._all_finite(one))
  bad = parallel.replicate({"w": np.ones((3, 2), np.float32),
                            "b": np.array([0.0, np.nan], np.float32)})
  assert not bool(divergence._all_finite(divergence._one_replica(bad)))
