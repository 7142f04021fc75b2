"""Several processes: two local processes with two CPU devices each (gloo).

Every multi-process run here is real: ``ferjax train`` launched twice with
``--coordinator/--num-processes/--process-id``, joined by
``jax.distributed`` over localhost, collectives through gloo. They are
compared with one process holding four devices (this test session).

The two layouts run the same computation but not bit for bit: XLA:CPU
partitions a kernel's work by how many devices share the process, so the
same single-device gradient of LeNet-5's first convolution differs by ~4e-8
between a process with four CPU devices and one with one or two (and gloo's
all-reduce adds in another order than the in-process one). SGD amplifies
that over a run, to about 1e-4 in some biases after 32 steps. So the early
steps are compared tightly (a wrong row, a missing reduction or a skipped
process shows there at once) and the end of the run loosely. With one or two
devices per process the kernels agree and a sum of two is the same in any
order: two processes of one device equal one process of two bit for bit.
"""

import json
import pathlib
import shutil
import signal
import time

import jax
import numpy as np
import pytest

from helpers import (QUICKSTART, TIMEOUT, final_params, finish, launch,
                     tiny_config, tiny_overrides, without_timing)
from ferjax.run.run_dir import read_metrics
from ferjax.train import loop
from ferjax.train.parallel import AXIS, Parallel


def run_two_processes(workdir: pathlib.Path, overrides: list[str]) -> str:
  """Process 0's stdout of a completed two-process run."""
  return finish(launch(workdir, overrides))[0][0]


def assert_same_runs(a: pathlib.Path, b: pathlib.Path, *,
                     resumed: bool = False) -> None:
  """The same run up to float32 rounding amplified by training.

  A resumed run's train events are not compared: its first one averages
  only the steps since the resumption.
  """
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-2,
                                                       atol=1e-3),
               final_params(a), final_params(b))
  events_a, events_b = (read_metrics(run) for run in (a, b))
  if resumed:
    events_a, events_b = ([e for e in events if e["split"] != "train"]
                          for events in (events_a, events_b))
  assert [(e["step"], e["split"]) for e in events_a] == [
      (e["step"], e["split"]) for e in events_b]
  first_eval = min(e["step"] for e in events_a if e["split"] != "train")
  for x, y in zip(events_a, events_b):
    early = x["step"] < first_eval
    assert x["loss"] == pytest.approx(y["loss"], rel=1e-5 if early else 2e-2)
    assert x["accuracy"] == pytest.approx(y["accuracy"],
                                          abs=1e-9 if early else 0.03)


@pytest.fixture(scope="module")
def two_processes(synthetic_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("two_processes")
  stdout = run_two_processes(workdir, tiny_overrides(synthetic_data_dir))
  return workdir, stdout


def test_two_processes_match_one_process_with_four_devices(
    reference_run, two_processes):
  (one, _), (two, stdout) = reference_run, two_processes
  assert_same_runs(two, one)
  final = [e for e in read_metrics(two) if e["split"] == "test"][-1]
  assert f"test: accuracy={final['accuracy']:.4f}" in stdout
  session = json.loads((two / "manifest.json").read_text())["sessions"][-1]
  assert (session["process_count"], session["device_count"],
          session["local_device_count"]) == (2, 4, 2)


def test_only_process_zero_writes(two_processes, reference_run):
  two, stdout = two_processes
  # One copy of every event, and process 1 printed no results.
  assert len(read_metrics(two)) == len(read_metrics(reference_run[0]))
  assert stdout.count("test: accuracy=") == 1


def test_streamed_input_across_two_processes(
    synthetic_data_dir, reference_run, tmp_path):
  """Each process reads only its devices' rows; the run is unchanged."""
  run_two_processes(tmp_path, tiny_overrides(
      synthetic_data_dir, **{"input.pipeline": "stream"}))
  assert_same_runs(tmp_path, reference_run[0])


def test_two_processes_of_one_device_equal_one_process_of_two_bit_for_bit(
    synthetic_data_dir, tmp_path):
  """With one or two devices per process XLA:CPU's kernels agree, and a sum
  of two values is the same in any order: here the processes add nothing."""
  overrides = tiny_overrides(synthetic_data_dir)
  finish(launch(tmp_path / "one", overrides, processes=1, devices=2))
  finish(launch(tmp_path / "two", overrides, processes=2, devices=1))
  jax.tree.map(np.testing.assert_array_equal, final_params(tmp_path / "one"),
               final_params(tmp_path / "two"))
  assert without_timing(read_metrics(tmp_path / "one")) == without_timing(
      read_metrics(tmp_path / "two"))


def drop_last_checkpoint(workdir: pathlib.Path) -> int:
  """Leaves the run as if it had stopped at its second-to-last checkpoint."""
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                 if p.name.isdigit())
  shutil.rmtree(workdir / "checkpoints" / str(steps[-1]))
  return steps[-2]


def test_two_process_checkpoint_resumes_in_one_process(
    synthetic_data_dir, two_processes, tmp_path):
  resumed = tmp_path / "run"
  shutil.copytree(two_processes[0], resumed)
  assert drop_last_checkpoint(resumed) > 0
  loop.train_and_evaluate(tiny_config(synthetic_data_dir), resumed)
  assert_same_runs(resumed, two_processes[0], resumed=True)


def test_one_process_checkpoint_resumes_in_two_processes(
    synthetic_data_dir, reference_run, tmp_path):
  resumed = tmp_path / "run"
  shutil.copytree(reference_run[0], resumed)
  step = drop_last_checkpoint(resumed)
  run_two_processes(resumed, tiny_overrides(synthetic_data_dir))
  sessions = json.loads((resumed / "manifest.json").read_text())["sessions"]
  assert sessions[-1]["start_step"] == step
  assert sessions[-1]["process_count"] == 2
  assert_same_runs(resumed, reference_run[0], resumed=True)


def test_a_killed_process_stops_the_other_and_the_job_resumes(
    synthetic_data_dir, tmp_path):
  overrides = tiny_overrides(synthetic_data_dir, num_epochs=12)
  procs = launch(tmp_path, overrides, heartbeat=5)
  checkpoints = tmp_path / "checkpoints"
  deadline = time.monotonic() + TIMEOUT
  while not (checkpoints.is_dir() and
             any(p.name.isdigit() for p in checkpoints.iterdir())):
    assert time.monotonic() < deadline, "no checkpoint was written"
    assert procs[0].poll() is None, procs[0].communicate()[1][-3000:]
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGKILL)
  killed_at = time.monotonic()
  try:
    _, err = procs[0].communicate(timeout=120)
  finally:
    for p in procs:
      p.kill()
      p.communicate()
  assert procs[0].returncode != 0
  # The heartbeat timeout (5 s) plus the coordination service's polling.
  assert time.monotonic() - killed_at < 60
  assert "unhealthy" in err or "died" in err, err[-3000:]
  saved = sorted(int(p.name) for p in checkpoints.iterdir()
                 if p.name.isdigit())
  assert saved and saved[-1] < 12 * 16

  # The same command again continues from the last checkpoint.
  out = run_two_processes(tmp_path, overrides)
  assert "test: accuracy=" in out
  sessions = json.loads((tmp_path / "manifest.json").read_text())["sessions"]
  assert sessions[-1]["start_step"] >= saved[-1] > 0
  assert sessions[-1]["end_step"] == 12 * 16


@pytest.mark.parametrize("backend", ["shard_map", "pmap"])
def test_device_i_gets_rows_i_of_the_global_batch(backend):
  parallel = Parallel(backend)
  batch = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  rows = parallel.local_positions(16)
  np.testing.assert_array_equal(rows, np.arange(16))  # One process: all.

  def own_rows(x):
    return jax.lax.all_gather(x, AXIS, tiled=True)

  gathered = parallel.unreplicate(parallel.map(own_rows, sharded_argnums=(0,))(
      parallel.shard(batch[rows], 16)))
  np.testing.assert_array_equal(np.asarray(gathered), batch)
  with pytest.raises(ValueError, match="does not divide over 4 devices"):
    parallel.shard(batch[:10], 10)


def test_incomplete_launch_flags_are_named(tmp_path, capsys):
  from ferjax import cli
  code = cli.main(["train", "--config", QUICKSTART, "--workdir",
                   str(tmp_path), "--num-processes", "2"])
  err = capsys.readouterr().err
  assert code == 2
  assert "--coordinator, --process-id: needed" in err
  assert not any(tmp_path.iterdir())
