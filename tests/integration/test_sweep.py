"""Sweeps: expansion, validation before any work, and real tiny trials that
finish, fail, and resume after the sweep is killed."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import (GRID, QUICKSTART, REPO, TINY, run_sweep, status,
                     sweep_args, sweep_file)
from ferjax.commands import report as report_command
from ferjax import config as config_lib
from ferjax import filelock
from ferjax.experiment import runs as runs_lib
from ferjax.experiment import sweep
from ferjax.commands import sweep as sweep_command
from ferjax.run.run_dir import RunDir


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
  """Trial processes share compiled programs: seeds reuse one compile."""
  with pytest.MonkeyPatch.context() as patch:
    cache = tmp_path_factory.getbasetemp() / "jax_compilation_cache"
    patch.setenv("JAX_COMPILATION_CACHE_DIR", str(cache))
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    yield


def mtimes(run_dir: pathlib.Path) -> dict[str, int]:
  return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()
          if p.is_file()}


def test_axis_product_and_zip():
  grid = sweep.product(sweep.axis("seed", [0, 1]),
                       sweep.axis("optimizer.learning_rate", [0.05, 0.1]))
  assert grid == [{"seed": s, "optimizer.learning_rate": lr}
                  for s in (0, 1) for lr in (0.05, 0.1)]
  paired = sweep.zip_(sweep.axis("optimizer.learning_rate", [0.1, 0.01]),
                      sweep.axis("num_epochs", [10, 30]))
  assert paired == [{"optimizer.learning_rate": 0.1, "num_epochs": 10},
                    {"optimizer.learning_rate": 0.01, "num_epochs": 30}]
  seeded = sweep.product(paired, sweep.axis("seed", range(3)))
  assert len(seeded) == 6
  assert seeded[5] == {"optimizer.learning_rate": 0.01, "num_epochs": 30,
                       "seed": 2}


def test_expansion_errors():
  with pytest.raises(ValueError, match="equal length"):
    sweep.zip_(sweep.axis("seed", [0, 1]), sweep.axis("num_epochs", [1]))
  with pytest.raises(ValueError, match="seed set by more than one axis"):
    sweep.product(sweep.axis("seed", [0]), sweep.axis("seed", [1]))
  with pytest.raises(ValueError, match="at least one value"):
    sweep.axis("seed", [])


def test_trial_names_are_readable_safe_and_distinct():
  assert sweep.trial_name({"seed": 0, "optimizer.learning_rate": 0.05}) == (
      "seed=0,optimizer.learning_rate=0.05")
  assert sweep.trial_name({}) == "default"
  a = sweep.trial_name({"input.train_split": "train[:512]"})
  b = sweep.trial_name({"input.train_split": "train[:1024]"})
  long = sweep.trial_name({"evals": "{'test': {'split': 'test', " + "x" * 200})
  for name in (a, b, long):
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._,=+-")
    assert len(name) <= 100
  assert a.startswith("input.train_split=train__512_-") and a != b


def test_plan_plain_list_and_validation(tmp_path):
  config = sweep_file(tmp_path, "[{'seed': 3}, {'seed': 4, 'num_epochs': 2}]")
  trials = sweep.plan(config, ["batch_size=32"], tmp_path / "sw")
  assert [t.workdir.name for t in trials] == ["seed=3", "seed=4,num_epochs=2"]
  assert trials[1].args == ["seed=4", "num_epochs=2"]
  assert sweep.train_command(config, ["batch_size=32"], trials[1])[-3:] == [
      "--config.batch_size=32", "--config.seed=4", "--config.num_epochs=2"]

  bad = {
      "[{'seed': 0}, {'optimizer.lerning_rate': 0.1}]":
          "trial optimizer.lerning_rate=0.1: .*unknown field",
      "[{'batch_size': 'many'}]": "expected an integer",
      "[{'optimizer.momentum': 1.5}]": "config.optimizer.momentum",
      "[{'seed': 0}, {'seed': 0}]": "twice",
      "[]": "non-empty list",
      "[('seed', 0)]": "non-empty list",
  }
  for trials_src, message in bad.items():
    config = sweep_file(tmp_path, trials_src)
    with pytest.raises(config_lib.ConfigError, match=message):
      sweep.plan(config, [], tmp_path / "sw")
  with pytest.raises(config_lib.ConfigError, match="swept by"):
    sweep.plan(sweep_file(tmp_path, "[{'seed': 1}]"), ["seed=2"],
               tmp_path / "sw")
  assert not (tmp_path / "sw").exists()


def test_unknown_field_fails_before_any_trial(tmp_path, capsys):
  config = sweep_file(tmp_path, GRID + " + [{'num_epohcs': 3}]")
  code = sweep_command.main(["--config", config, "--workdir",
                             str(tmp_path / "sw")])
  assert code == 2
  assert "trial num_epohcs=3" in capsys.readouterr().err
  assert not (tmp_path / "sw").exists()


def test_plan_refuses_a_run_dir_of_another_config(tmp_path):
  config = sweep_file(tmp_path, "[{'seed': 0}]")
  saved = config_lib.apply_overrides(config_lib.load_config(config),
                                     ["seed=0", "num_epochs=5"])
  (tmp_path / "sw" / "seed=0").mkdir(parents=True)
  (tmp_path / "sw" / "seed=0" / "config.json").write_text(
      config_lib.to_json(saved))
  with pytest.raises(config_lib.ConfigError, match="fields: num_epochs"):
    sweep.plan(config, [], tmp_path / "sw")
  # Where a run executes may change, as when the trainer resumes.
  sweep.plan(config, ["num_epochs=5", "parallel.backend=pmap"],
             tmp_path / "sw")


@pytest.fixture(scope="module")
def grid_sweep(synthetic_data_dir, tmp_path_factory):
  """2 seeds x 2 learning rates, 2 trials at a time."""
  directory = tmp_path_factory.mktemp("grid")
  config = sweep_file(directory, GRID)
  code, out = run_sweep(sweep_args(config, directory / "sw",
                                   synthetic_data_dir,
                                   "--concurrent-trials", "2"))
  return directory / "sw", code, out


def test_four_trial_sweep_completes(grid_sweep):
  workdir, code, out = grid_sweep
  assert code == 0, out
  summary = json.loads((workdir / sweep.SWEEP_FILE).read_text())
  names = [t["name"] for t in summary["trials"]]
  assert names == [f"seed={s},optimizer.learning_rate={lr}"
                   for s in (0, 1) for lr in (0.05, 0.1)]
  assert summary["counts"] == {"finished": 4}
  for name in names:
    # One line when a trial starts (with its log), one with its result.
    assert f"started {name} (log: {workdir / name / 'stderr.log'})" in out
    assert re.search(rf"{re.escape(name)}: finished in \d+ s; best "
                     r"test/accuracy=0\.\d{4} \(step 8\)", out), out
  for name in names:
    run_dir = workdir / name
    assert RunDir(run_dir).is_finished()
    assert status(run_dir)["attempts"] == 1
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["seed"], saved["optimizer"]["learning_rate"]) == tuple(
        json.loads(v) for v in status(run_dir)["overrides"].values())
    tests = [e for e in runs_lib.load_runs([run_dir])[0].events
             if e["split"] == "test"]
    assert [e["step"] for e in tests] == [8]
  assert "4 finished, 0 failed" in out


def test_report_of_the_sweep(grid_sweep, tmp_path, capsys):
  workdir = grid_sweep[0]
  assert report_command.main([str(workdir), "--out", str(tmp_path)]) == 0
  printed = capsys.readouterr().out
  assert printed.count("| seed=") == 4
  rows = (tmp_path / "report.csv").read_text().splitlines()
  assert rows[0].startswith("run,seed,optimizer.learning_rate,status,step,")
  assert len(rows) == 5
  seeds = (tmp_path / "report_seeds.csv").read_text().splitlines()
  assert seeds[0].startswith("group,optimizer.learning_rate,n,")
  assert [r.split(",")[:3] for r in seeds[1:]] == [
      ["optimizer.learning_rate=0.05", "0.05", "2"],
      ["optimizer.learning_rate=0.1", "0.1", "2"]]
  plots = sorted(p.name for p in (tmp_path / "plots").iterdir())
  assert len([p for p in plots if p.startswith("confusion_")]) == 4
  assert {"learning_curves.png", "per_class_accuracy.png"} <= set(plots)


def test_failed_trial_is_recorded_and_finished_ones_skipped(
    grid_sweep, synthetic_data_dir, tmp_path):
  """One trial fails at run time; a finished one is never run again."""
  workdir = tmp_path / "sw"
  done = "seed=0,optimizer.learning_rate=0.05"
  shutil.copytree(grid_sweep[0] / done, workdir / done)
  before = mtimes(workdir / done)
  config = sweep_file(tmp_path, "[{'seed': 0, 'optimizer.learning_rate': "
                      "0.05}, {'input.train_split': 'nosuchsplit'}]")
  args = sweep_args(config, workdir, synthetic_data_dir)
  for attempt in (1, 2):
    code, out = run_sweep(args)
    assert code == 1, out
    assert "1 already finished, 1 to run" in out
    failed = status(workdir / "input.train_split=nosuchsplit")
    assert failed["status"] == "failed" and failed["attempts"] == attempt
    assert failed["returncode"] != 0
    assert "nosuchsplit" in failed["stderr_tail"]
    assert mtimes(workdir / done) == before
    summary = json.loads((workdir / sweep.SWEEP_FILE).read_text())
    assert summary["counts"] == {"failed": 1, "finished": 1}


def recipes_file(directory: pathlib.Path) -> str:
  """An experiment whose argument picks one of two recipes, and a sweep of
  TrialSpecs over both: recipe 'b' differs in more than a few fields."""
  path = directory / "recipes.py"
  path.write_text(
      "from ferjax import config as config_lib\n"
      "from ferjax.experiment import sweep\n\n"
      "def get_config(arg=None):\n"
      "  args = config_lib.parse_arg(arg, recipe='', seeds=1)\n"
      "  if args.recipe not in ('a', 'b'):\n"
      "    raise config_lib.ConfigError(f'no recipe {args.recipe!r}')\n"
      f"  extra = {TINY!r}\n"
      "  if args.recipe == 'b':\n"
      "    extra += ['batch_size=32', 'input.image_size=(24, 24)',\n"
      "              'input.channels=1', 'optimizer.learning_rate=0.02']\n"
      "  return config_lib.apply_overrides(\n"
      f"      config_lib.load_config({QUICKSTART!r}), extra)\n\n"
      "def get_sweep(arg=None):\n"
      "  seeds = config_lib.parse_arg(arg, recipe='', seeds=1).seeds\n"
      "  return [sweep.TrialSpec({'seed': s}, arg=f'recipe={r}',\n"
      "                          name=f'{r}-seed{s}')\n"
      "          for r in ('a', 'b') for s in range(seeds)]\n")
  return str(path)


def test_trials_with_their_own_experiment_argument(tmp_path):
  spec = recipes_file(tmp_path)
  trials = sweep.plan(f"{spec}:seeds=2", ["num_epochs=2"], tmp_path / "sw")
  assert [(t.name, t.arg, t.overrides) for t in trials] == [
      (f"{r}-seed{s}", f"recipe={r}", {"seed": s})
      for r in ("a", "b") for s in (0, 1)]
  command = sweep.train_command(f"{spec}:seeds=2", ["num_epochs=2"],
                                trials[3])
  assert command[command.index("--config") + 1] == f"{spec}:recipe=b"
  assert command[-2:] == ["--config.num_epochs=2", "--config.seed=1"]
  # Each trial trains its own recipe, with the common overrides and its seed.
  for trial in trials:
    config = sweep.trial_config(f"{spec}:seeds=2", ["num_epochs=2"], trial)
    expected = config_lib.apply_overrides(
        config_lib.load_config(f"{spec}:{trial.arg}"),
        ["num_epochs=2", f"seed={trial.overrides['seed']}"])
    assert config_lib.to_json(config) == config_lib.to_json(expected)
  a, b = (sweep.trial_config(spec, [], t) for t in (trials[0], trials[2]))
  assert (a.batch_size, a.input.channels) == (64, 3)
  assert (b.batch_size, tuple(b.input.image_size), b.input.channels) == (
      32, (24, 24), 1)
  # Without a name, the argument and the overrides name the directory.
  path = tmp_path / "unnamed.py"
  path.write_text(pathlib.Path(spec).read_text().replace(
      "name=f'{r}-seed{s}'", "name=None"))
  assert [t.name for t in sweep.plan(str(path), [], tmp_path / "sw2")] == [
      "recipe=a,seed=0", "recipe=b,seed=0"]


def test_a_bad_trial_argument_fails_before_any_trial(tmp_path, capsys):
  bad = tmp_path / "bad.py"
  bad.write_text(pathlib.Path(recipes_file(tmp_path)).read_text().replace(
      "for r in ('a', 'b')", "for r in ('a', 'c')"))
  code = sweep_command.main(["--config", str(bad), "--workdir",
                             str(tmp_path / "sw")])
  assert code == 2
  assert "trial c-seed0: no recipe 'c'" in capsys.readouterr().err
  assert not (tmp_path / "sw").exists()
  for trials, message in [("[sweep.TrialSpec({'seed': 0}, arg='')]",
                           "TrialSpec"),
                          ("[sweep.TrialSpec({0: 1})]", "TrialSpec")]:
    with pytest.raises(config_lib.ConfigError, match=message):
      sweep.plan(sweep_file(tmp_path, trials), [], tmp_path / "sw")


def test_trials_of_two_recipes_run_each_its_own(synthetic_data_dir, tmp_path):
  spec = recipes_file(tmp_path)
  code, out = run_sweep(sweep_args(spec, tmp_path / "sw", synthetic_data_dir))
  assert code == 0, out
  summary = json.loads((tmp_path / "sw" / sweep.SWEEP_FILE).read_text())
  assert [(t["name"], t["arg"], t["status"]) for t in summary["trials"]] == [
      ("a-seed0", "recipe=a", "finished"), ("b-seed0", "recipe=b", "finished")]
  for name, channels, batch in (("a-seed0", 3, 64), ("b-seed0", 1, 32)):
    saved = RunDir(tmp_path / "sw" / name).read_config()
    assert (saved.input.channels, saved.batch_size) == (channels, batch)
    assert status(tmp_path / "sw" / name)["command"][5] == (
        f"{spec}:recipe={name[0]}")
  # Relaunched: both finished, nothing runs again.
  code, out = run_sweep(sweep_args(spec, tmp_path / "sw", synthetic_data_dir))
  assert code == 0 and "2 already finished, 0 to run" in out


def test_a_running_sweep_directory_is_locked(tmp_path):
  config = sweep_file(tmp_path, "[{'seed': 0}]")
  trials = sweep.plan(config, [], tmp_path / "sw")
  (tmp_path / "sw").mkdir()
  holder = filelock.try_lock(tmp_path / "sw" / ".sweep.lock")
  try:
    with pytest.raises(sweep.SweepError, match="another process"):
      sweep.Runner(config, [], tmp_path / "sw", trials).run()
  finally:
    os.close(holder)
  assert not (tmp_path / "sw" / "seed=0").exists()


def test_relaunch_waits_for_a_trial_still_running_elsewhere(tmp_path):
  """A sweep killed without its trials: the relaunch lets them finish."""
  config = sweep_file(tmp_path, "[{'seed': 5}]")
  [trial] = sweep.plan(config, [], tmp_path / "sw")
  trial.workdir.mkdir(parents=True)
  orphan = RunDir(trial.workdir).try_lock()

  def orphan_finishes():
    (trial.workdir / "manifest.json").write_text(json.dumps(
        {"sessions": [{"start_step": 0, "end_time": "2025-01-01"}]}))
    os.close(orphan)

  timer = threading.Timer(1.0, orphan_finishes)
  timer.start()
  statuses = sweep.Runner(config, [], tmp_path / "sw", [trial]).run()
  timer.join()
  assert statuses == {"seed=5": "finished"}
  assert status(trial.workdir)["attempts"] == 0  # Not started again.


@pytest.mark.slow
def test_killed_sweep_resumes_without_rerunning_finished_trials(
    synthetic_data_dir, tmp_path):
  config = sweep_file(tmp_path, GRID)
  workdir = tmp_path / "sw"
  args = sweep_args(config, workdir, synthetic_data_dir, "--concurrent-trials", "2")
  proc = subprocess.Popen(
      [sys.executable, "-m", "ferjax.cli", "sweep", *args], cwd=REPO,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      start_new_session=True)  # Its own process group, trials included.
  deadline = time.monotonic() + 300
  finished = []
  while not finished and time.monotonic() < deadline and proc.poll() is None:
    time.sleep(0.1)
    finished = [d for d in workdir.glob("seed=*")
                if (d / sweep.STATUS_FILE).exists()
                and status(d)["status"] == "finished"]
  assert proc.poll() is None, "the sweep ended before it could be killed"
  os.killpg(proc.pid, signal.SIGKILL)
  proc.wait()
  trials = sorted(workdir.glob("seed=*"))
  assert len(trials) == 4
  finished = [d for d in trials if status(d)["status"] == "finished"]
  unfinished = [d for d in trials if not RunDir(d).is_finished()]
  assert finished and unfinished
  before = {d: (mtimes(d), status(d)["attempts"]) for d in trials}

  code, out = run_sweep(args)
  assert code == 0, out
  done = 4 - len(unfinished)
  assert f"{done} already finished, {4 - done} to run" in out
  summary = json.loads((workdir / sweep.SWEEP_FILE).read_text())
  assert summary["counts"] == {"finished": 4}
  for d in finished:
    assert mtimes(d) == before[d][0]
    assert status(d)["attempts"] == 1
  for d in unfinished:
    assert status(d)["attempts"] == before[d][1] + 1
    assert RunDir(d).is_finished()
