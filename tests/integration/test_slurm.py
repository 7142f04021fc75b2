"""Sweeps and multi-process training on a real SLURM (tests/slurm_cluster.py).

The cluster tests skip, with the reason, where a local SLURM cannot start
(not root, slurm-wlm/munge not installed); the resource checks run
everywhere.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from ferjax.commands import reproduce as reproduce_command
from ferjax.commands import report as report_command
from ferjax import config as config_lib
from ferjax import filelock
from ferjax.experiment import slurm
from ferjax.experiment import sweep
from ferjax.commands import sweep as sweep_command
from ferjax.run.run_dir import RunDir, read_metrics
import slurm_cluster
from helpers import (GRID, QUICKSTART, REPO, final_params, finish, launch,
                     run_sweep, status, sweep_args, sweep_file, tiny_overrides,
                     without_timing)

TIMEOUT = 600


def quickstart(*overrides: str) -> ml_collections.ConfigDict:
  return config_lib.apply_overrides(config_lib.load_config(QUICKSTART),
                                    overrides)


def test_resources_from_the_config():
  res = slurm.resources(quickstart("parallel.cpu_devices=None"))
  assert res == slurm.Resources()
  assert res.sbatch_parameters() == {
      "time": 60, "nodes": 1, "ntasks_per_node": 1, "cpus_per_task": 1,
      "signal_delay_s": 90}
  res = slurm.resources(quickstart(
      "slurm.partition=gpu", "slurm.time_minutes=2", "slurm.tasks_per_node=4",
      "slurm.gpus_per_node=4", "slurm.mem_gb=1.5",
      "slurm.sbatch=('--account=lab', '--exclusive')",
      "parallel.cpu_devices=3"))
  assert (res.tasks, res.cpus_per_task) == (4, 3)
  assert res.sbatch_parameters() == {
      "time": 2, "nodes": 1, "ntasks_per_node": 4, "cpus_per_task": 3,
      "signal_delay_s": 30, "partition": "gpu", "gpus_per_node": 4,
      "mem": "1536MB",
      "additional_parameters": {"account": "lab", "exclusive": True}}
  assert slurm.resources(quickstart("slurm.cpus_per_task=8")).cpus_per_task == 8
  older = quickstart("parallel.cpu_devices=None").to_dict()
  del older["slurm"]  # An experiment written before the section existed.
  assert slurm.resources(
      ml_collections.ConfigDict(older)) == slurm.Resources()


@pytest.mark.parametrize("field,value,message", [
    ("tasks_per_node", "0", "config.slurm.tasks_per_node: expected a positive"),
    ("time_minutes", "-5", "config.slurm.time_minutes"),
    ("cpus_per_task", "0", "config.slurm.cpus_per_task"),
    ("gpus_per_node", "-1", "config.slurm.gpus_per_node"),
    ("mem_gb", "'lots'", "config.slurm.mem_gb"),
    ("sbatch", "('account=lab',)", "config.slurm.sbatch: expected a tuple"),
])
def test_bad_resources_are_named_before_any_work(tmp_path, capsys, field,
                                                  value, message):
  config = sweep_file(tmp_path, "[{'seed': 0}]")
  code = sweep_command.main(["--config", config, "--workdir", str(tmp_path / "sw"),
                     "--launcher", "slurm", f"--config.slurm.{field}={value}"])
  assert code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "sw").exists()


def test_without_slurm_commands_the_sweep_says_so(tmp_path, capsys,
                                                 monkeypatch):
  config = sweep_file(tmp_path, "[{'seed': 0}]")
  monkeypatch.setenv("PATH", str(tmp_path))  # No squeue, no sbatch.
  code = sweep_command.main(["--config", config, "--workdir", str(tmp_path / "sw"),
                     "--launcher", "slurm"])
  assert code == 2
  assert "squeue not found: the SLURM launcher needs" in (
      capsys.readouterr().err)
  assert not (tmp_path / "sw" / "seed=0" / sweep.STATUS_FILE).exists()


def test_status_of_a_directory_that_is_no_sweep(tmp_path, capsys):
  assert sweep_command.main(["--status", "--workdir", str(tmp_path)]) == 2
  assert "holds no sweep.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def cluster():
  reason = slurm_cluster.unavailable()
  if reason:
    pytest.skip(reason)
  pytest.importorskip("submitit", reason="the slurm extra is not installed")
  with slurm_cluster.local_slurm() as env, pytest.MonkeyPatch.context() as mp:
    for name, value in env.items():
      mp.setenv(name, value)
    # Trial processes share compiled programs, as in test_sweep.
    mp.setenv("JAX_COMPILATION_CACHE_DIR", str(
        pathlib.Path(env["SLURM_CONF"]).parent / "jax_compilation_cache"))
    mp.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    mp.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    yield env


@pytest.fixture(scope="module")
def grids(cluster, synthetic_data_dir, tmp_path_factory):
  """The 2x2 sweep run by the local launcher and through SLURM."""
  directory = tmp_path_factory.mktemp("grids")
  config = sweep_file(directory, GRID)
  runs = {}
  for launcher in ("local", "slurm"):
    workdir = directory / launcher
    runs[launcher] = (workdir, *run_sweep(sweep_args(
        config, workdir, synthetic_data_dir, "--concurrent-trials", "2",
        "--launcher", launcher)))
  return runs


@pytest.mark.timeout(TIMEOUT)
def test_slurm_sweep_finishes_every_trial_like_the_local_one(grids, tmp_path):
  workdir, code, out = grids["slurm"]
  assert code == 0, out
  assert "4 finished, 0 failed" in out
  summary = json.loads((workdir / sweep.SWEEP_FILE).read_text())
  assert summary["counts"] == {"finished": 4}
  array = None
  for trial in summary["trials"]:
    record = status(workdir / trial["name"])
    assert record["launcher"] == "slurm" and record["attempts"] == 1
    assert record["slurm_state"] == "COMPLETED"
    job_array, _ = record["job_id"].split("_")
    assert array in (None, job_array)  # One array for the whole sweep.
    array = job_array
    # The trial's own log, with its evaluation lines (train.loop._eval_line).
    assert re.search(r"step \d+: test loss [\d.]+, accuracy [\d.]+",
                     pathlib.Path(record["stderr_log"]).read_text())
    local_run = grids["local"][0] / trial["name"]
    assert without_timing(read_metrics(workdir / trial["name"])) == (
        without_timing(read_metrics(local_run)))

  reports = {}
  for launcher, (run_dir, _, _) in grids.items():
    assert report_command.main([str(run_dir), "--out", str(tmp_path / launcher)]) == 0
    reports[launcher] = (tmp_path / launcher / "report.csv").read_text()
  assert reports["slurm"] == reports["local"]
  assert reports["slurm"].count("\n") == 5
  trial = workdir / summary["trials"][0]["name"]
  assert reproduce_command.main([str(trial), "--workdir", str(tmp_path / "again")]) == 0


def test_status_shows_each_trial_and_its_job(grids, capsys):
  workdir = grids["slurm"][0]
  started = time.monotonic()
  assert sweep_command.main(["--status", "--workdir", str(workdir)]) == 0
  assert time.monotonic() - started < 10
  lines = capsys.readouterr().out.splitlines()
  assert lines[-1] == "4 finished"
  for line in lines[:-1]:
    assert line.startswith("finished  seed=")
    assert " job " in line and "(COMPLETED)" in line


def wait_for(predicate, what: str, timeout: float = 300) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    assert time.monotonic() < deadline, f"timed out waiting for {what}"
    time.sleep(0.1)


def checkpoints(run_dir: pathlib.Path) -> list[int]:
  path = run_dir / "checkpoints"
  return sorted(int(p.name) for p in path.iterdir()
                if p.name.isdigit()) if path.is_dir() else []


# 240 steps with a checkpoint every 8: long enough to interrupt on time.
LONG_TRIAL = "[{'num_epochs': 30}]"
LONG_ARGS = ("--config.checkpoint.every_steps=8",)


@pytest.fixture(scope="module")
def uninterrupted(cluster, synthetic_data_dir, tmp_path_factory):
  """The long trial run through by the local launcher."""
  directory = tmp_path_factory.mktemp("uninterrupted")
  code, out = run_sweep(sweep_args(sweep_file(directory, LONG_TRIAL),
                                   directory / "sw", synthetic_data_dir,
                                   *LONG_ARGS))
  assert code == 0, out
  return directory / "sw" / "num_epochs=30"


def start_long_trial(directory: pathlib.Path, data_dir: str
                     ) -> tuple[list[str], pathlib.Path, str]:
  """Submits the long trial without waiting; returns once it checkpointed."""
  args = sweep_args(sweep_file(directory, LONG_TRIAL), directory / "sw",
                    data_dir, *LONG_ARGS, "--launcher", "slurm")
  run_dir = directory / "sw" / "num_epochs=30"
  code, out = run_sweep([*args, "--no-wait"])
  assert code == 0, out
  wait_for(lambda: checkpoints(run_dir), "a checkpoint")
  return args, run_dir, status(run_dir)["job_id"]


def assert_resumed_exactly(run_dir: pathlib.Path,
                           uninterrupted: pathlib.Path) -> None:
  sessions = json.loads((run_dir / "manifest.json").read_text())["sessions"]
  assert len(sessions) == 2 and sessions[1]["start_step"] > 0
  jax.tree.map(np.testing.assert_array_equal, final_params(run_dir),
               final_params(uninterrupted))
  evals = [[e for e in read_metrics(d) if e["split"] != "train"]
           for d in (run_dir, uninterrupted)]
  assert without_timing(evals[0]) == without_timing(evals[1])


@pytest.mark.timeout(TIMEOUT)
def test_scancel_then_relaunch_resumes_the_trial_exactly(
    uninterrupted, synthetic_data_dir, tmp_path, capsys):
  args, run_dir, job = start_long_trial(tmp_path, synthetic_data_dir)
  # --status answers at once, even while a sweep process holds the lock.
  lock = filelock.try_lock(tmp_path / "sw" / ".sweep.lock")
  try:
    capsys.readouterr()
    assert sweep_command.main(["--status", "--workdir", str(tmp_path / "sw")]) == 0
  finally:
    os.close(lock)
  assert capsys.readouterr().out.splitlines() == [
      f"running   num_epochs=30  attempts=1 job {job} (RUNNING)",
      "1 running"]
  subprocess.run(["scancel", job], check=True)
  wait_for(lambda: slurm.job_states().get(job) not in slurm.LIVE_STATES,
           "the cancelled job to end")
  assert not RunDir(run_dir).is_finished()
  capsys.readouterr()
  assert sweep_command.main(["--status", "--workdir", str(tmp_path / "sw")]) == 0
  assert capsys.readouterr().out.startswith(
      f"stopped   num_epochs=30  attempts=1 job {job} (CANCELLED), log ")

  code, out = run_sweep(args)
  assert code == 0, out
  record = status(run_dir)
  assert record["attempts"] == 2 and record["jobs"][0] == job
  assert record["status"] == "finished" and record["job_id"] != job
  assert_resumed_exactly(run_dir, uninterrupted)


@pytest.mark.slow  # SLURM makes a requeued job wait 2 minutes.
@pytest.mark.timeout(TIMEOUT)
def test_a_requeued_trial_resumes_exactly(uninterrupted, synthetic_data_dir,
                                          tmp_path):
  """USR2, which SLURM sends before a time limit or a preemption: submitit
  requeues the job, and its trial resumes from the last checkpoint."""
  args, run_dir, job = start_long_trial(tmp_path, synthetic_data_dir)
  subprocess.run(["scancel", "--signal=USR2", job], check=True)
  code, out = run_sweep(args)  # Waits for the requeued job.
  assert code == 0, out
  assert f"job {job} of an earlier sweep is" in out
  record = status(run_dir)
  assert (record["job_id"], record["attempts"]) == (job, 1)
  assert "this job is preempted" in pathlib.Path(
      record["stderr_log"]).read_text()
  assert_resumed_exactly(run_dir, uninterrupted)


@pytest.mark.timeout(TIMEOUT)
def test_a_failed_trial_records_its_job_and_log(cluster, synthetic_data_dir,
                                                tmp_path):
  config = sweep_file(tmp_path, "[{'input.train_split': 'nosuchsplit'}]")
  code, out = run_sweep(sweep_args(config, tmp_path / "sw",
                                   synthetic_data_dir, "--launcher", "slurm"))
  assert code == 1, out
  record = status(tmp_path / "sw" / "input.train_split=nosuchsplit")
  assert record["status"] == "failed" and record["slurm_state"] == "FAILED"
  assert f"job {record['job_id']}, FAILED); log: {record['stderr_log']}" in out
  assert "nosuchsplit" in pathlib.Path(record["stderr_log"]).read_text()
  assert "nosuchsplit" in record["stderr_tail"]


def test_an_sbatch_error_is_named_and_nothing_recorded_as_submitted(
    cluster, tmp_path, capsys):
  config = sweep_file(tmp_path, "[{'seed': 0}]")
  code = sweep_command.main(["--config", config, "--workdir", str(tmp_path / "sw"),
                     "--launcher", "slurm", "--config.slurm.partition=nosuch"])
  assert code == 2
  assert "sbatch failed: " in capsys.readouterr().err
  record = status(tmp_path / "sw" / "seed=0")
  assert (record["status"], record["attempts"]) == ("pending", 0)
  assert "job_id" not in record


def srun_train(workdir: pathlib.Path, overrides: list[str],
               tasks: int = 2) -> subprocess.CompletedProcess:
  """``srun --ntasks=N ferjax train --distributed``: JAX reads SLURM's env."""
  return subprocess.run(
      ["srun", f"--ntasks={tasks}", "--kill-on-bad-exit=1",
       sys.executable, "-m", "ferjax.cli", "train", "--distributed",
       "--config", QUICKSTART, "--workdir", str(workdir),
       *(f"--config.{o}" for o in overrides)],
      env={**os.environ,
           "XLA_FLAGS": "--xla_force_host_platform_device_count=1"},
      capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)


@pytest.fixture(scope="module")
def srun_run(cluster, synthetic_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("srun")
  proc = srun_train(workdir, tiny_overrides(synthetic_data_dir))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc.stdout


@pytest.mark.timeout(TIMEOUT)
def test_srun_two_tasks_equal_the_hand_launched_two_processes(
    srun_run, synthetic_data_dir, tmp_path):
  workdir, stdout = srun_run
  session = json.loads((workdir / "manifest.json").read_text())["sessions"][-1]
  assert (session["process_count"], session["device_count"]) == (2, 2)
  assert stdout.count("test: accuracy=") == 1
  finish(launch(tmp_path, tiny_overrides(synthetic_data_dir), devices=1))
  jax.tree.map(np.testing.assert_array_equal, final_params(workdir),
               final_params(tmp_path))
  assert without_timing(read_metrics(workdir)) == without_timing(
      read_metrics(tmp_path))


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_a_two_task_sweep_trial_equals_srun(srun_run, synthetic_data_dir,
                                            tmp_path, monkeypatch):
  """The srun run's config as a sweep of one trial with 2 tasks."""
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
  config = tmp_path / "two_tasks.py"
  config.write_text(
      "from ferjax import config as config_lib\n\n"
      "def get_config(arg=None):\n"
      "  return config_lib.apply_overrides(config_lib.load_config(\n"
      f"      {QUICKSTART!r}), {tiny_overrides(synthetic_data_dir)!r})\n\n"
      "def get_sweep(arg=None):\n"
      "  return [{'seed': 0}]\n")
  code, out = run_sweep(["--config", str(config), "--workdir",
                         str(tmp_path / "sw"), "--launcher", "slurm",
                         "--config.slurm.tasks_per_node=2"])
  assert code == 0, out
  run_dir = tmp_path / "sw" / "seed=0"
  assert status(run_dir)["command"][-1] == "--distributed"
  session = json.loads((run_dir / "manifest.json").read_text())["sessions"][-1]
  assert (session["process_count"], session["device_count"]) == (2, 2)
  jax.tree.map(np.testing.assert_array_equal, final_params(run_dir),
               final_params(srun_run[0]))
  assert without_timing(read_metrics(run_dir)) == without_timing(
      read_metrics(srun_run[0]))
