"""The run directory: one writer, verified checkpoints, old runs, bad files.

Runs are copies of the session's reference run (helpers.tiny_config), so
only the tests that resume train, and only a few steps.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from helpers import (QUICKSTART, ferjax_cli, make_run, run_cli, tiny_config,
                     tiny_overrides, without_timing)
from ferjax.commands import report as report_command
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.data import preprocess
from ferjax.evaluate import run_evaluation as evaluate
from ferjax.experiment import reproduce
from ferjax.experiment import sweep
from ferjax.models import create_model
from ferjax.recognition.classifier import NonFiniteScores, load_classifier
from ferjax.run.run_dir import RunDir, RunDirBusy, RunDirError, write_imported
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import crossval
from ferjax.train import loop
from ferjax.train import setup as setup_lib
from ferjax.train.parallel import Parallel

OLD_CONFIG = pathlib.Path(__file__).parents[1] / "data" / "config_8ad864e.json"


def copy_run(reference_run, tmp_path: pathlib.Path) -> pathlib.Path:
  workdir = tmp_path / "run"
  shutil.copytree(reference_run[0], workdir)
  return workdir


def assert_one_clean_error(proc: subprocess.CompletedProcess, *needles: str):
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in (
      proc.stderr), proc.stderr
  errors = [line for line in proc.stderr.splitlines() if "error:" in line]
  assert len(errors) == 1, proc.stderr
  for needle in needles:
    assert needle in errors[0], errors[0]


def flip_bytes(path: pathlib.Path, offset: int = 64) -> None:
  data = bytearray(path.read_bytes())
  offset = min(offset, len(data) - 8)
  data[offset:offset + 8] = bytes(255 - b for b in data[offset:offset + 8])
  path.write_bytes(bytes(data))


def largest_file(step_dir: pathlib.Path) -> pathlib.Path:
  return max((p for p in step_dir.rglob("*") if p.is_file()),
             key=lambda p: p.stat().st_size)


# One writer per run directory (issue 13, item 3).

def test_a_second_writer_is_refused_naming_the_first(tmp_path):
  run = RunDir(tmp_path / "run")
  with run.lock(["ferjax", "train", "--workdir", "first"]):
    assert run.status() == "running"
    proc = ferjax_cli("train", "--config", QUICKSTART, "--workdir", str(run.path),
               *(f"--config.{o}" for o in tiny_overrides(str(tmp_path))))
    assert_one_clean_error(proc, str(run.path), f"process {os.getpid()}",
                           "ferjax train --workdir first")
    with pytest.raises(RunDirBusy):
      with run.lock():
        pass
  assert not (run.path / "metrics.jsonl").exists()
  with run.lock():  # Released with the block.
    pass


def test_kill_9_leaves_no_stale_lock(tmp_path):
  code = ("import sys, time; from ferjax.run.run_dir import RunDir\n"
          "with RunDir(sys.argv[1]).lock(['holder']):\n"
          "  print('locked', flush=True); time.sleep(60)\n")
  proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "locked"
  assert f"process {proc.pid} (holder)" in RunDir(tmp_path).holder()
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert RunDir(tmp_path).holder() is None
  with RunDir(tmp_path).lock():
    pass


def test_sweeps_and_crossval_honour_the_lock(tmp_path):
  config = tmp_path / "exp.py"
  config.write_text(f"from ferjax import config as config_lib\n"
                    f"def get_config(arg=None):\n"
                    f"  return config_lib.load_config({QUICKSTART!r})\n"
                    f"def get_sweep(arg=None):\n  return [{{'seed': 3}}]\n")
  [trial] = sweep.plan(str(config), [], tmp_path / "sw")
  trial.workdir.mkdir(parents=True)
  runner = sweep.Runner(str(config), [], tmp_path / "sw", [trial])
  assert runner._lock(trial)  # What the sweep holds while it owns a trial.
  try:
    with pytest.raises(RunDirBusy, match="in use"):
      loop.train_and_evaluate(tiny_config(str(tmp_path)), trial.workdir)
  finally:
    os.close(runner._locks.pop(trial.name))

  folds = tiny_config(str(tmp_path), **{"input.protocol": "kfold",
                                        "input.folds": 2})
  with RunDir(tmp_path / "cv").lock(["other crossval"]):
    with pytest.raises(RunDirBusy, match="other crossval"):
      crossval.run_folds(folds, str(tmp_path / "cv"))


# Verified checkpoints (item 7) and exact resumption (item 12).

def test_corrupt_checkpoint_fails_eval_and_predict_clearly(reference_run,
                                                           tmp_path):
  workdir = copy_run(reference_run, tmp_path)
  run = RunDir(workdir)
  with run.checkpoints(run.read_config()) as ckpt:
    best = run.resolve_step(ckpt, "best")
    other = max(s for s in ckpt.all_steps() if s != best)
  damaged = largest_file(workdir / "checkpoints" / str(best))
  flip_bytes(damaged)
  proc = ferjax_cli("eval", "--workdir", str(workdir))
  assert_one_clean_error(proc, f"checkpoints/{best}", damaged.name, "damaged")
  with pytest.raises(checkpoint_lib.CorruptCheckpoint, match=damaged.name):
    load_classifier(str(workdir))
  proc = ferjax_cli("predict", "--workdir", str(workdir), str(tmp_path / "x.png"))
  assert proc.returncode == 2 and damaged.name in proc.stderr, proc.stderr
  assert "Traceback" not in proc.stderr and len(
      proc.stderr.strip().splitlines()) == 1, proc.stderr
  # Another step still evaluates.
  assert ferjax_cli("eval", "--workdir", str(workdir), "--checkpoint",
             str(other)).returncode == 0


def test_truncated_checkpoint_gives_one_message(reference_run, tmp_path,
                                                monkeypatch):
  workdir = copy_run(reference_run, tmp_path)
  (workdir / "checkpoints" / "checksums.json").unlink()  # As before them.
  damaged = largest_file(workdir / "checkpoints" / "32")
  damaged.write_bytes(damaged.read_bytes()[:16])
  assert_one_clean_error(ferjax_cli("eval", "--workdir", str(workdir)),
                         "checkpoints/32")
  # The reads still in flight when the restore fails find Orbax's event
  # loop closed; they must not each print a traceback.
  reported = []
  monkeypatch.setattr(sys, "unraisablehook", reported.append)
  run = RunDir(workdir)
  for _ in range(3):
    with run.checkpoints(run.read_config()) as ckpt:
      with pytest.raises(checkpoint_lib.CorruptCheckpoint, match="32"):
        ckpt.restore_variables(32)
  time.sleep(1)
  assert not [u for u in reported if "Event loop" in str(u.exc_value)]
  metadata = workdir / "checkpoints" / "30" / "default" / "_METADATA"
  metadata.write_text("{")
  assert_one_clean_error(ferjax_cli("eval", "--workdir", str(workdir),
                             "--checkpoint", "30"),
                         "checkpoints/30", "default/_METADATA", "valid JSON")


def test_resume_falls_back_past_a_corrupt_checkpoint_exactly(
    reference_run, synthetic_data_dir, tmp_path, caplog):
  """The latest checkpoint damaged: resume from step 30, mid logging window.

  The train event at step 32 averages steps 29-32 like the uninterrupted
  run's (the window's steps 29-30 were saved with checkpoint 30), so the
  whole metrics file matches line for line and reproduce agrees.
  """
  workdir = copy_run(reference_run, tmp_path)
  flip_bytes(largest_file(workdir / "checkpoints" / "32"))
  results = loop.train_and_evaluate(tiny_config(synthetic_data_dir), workdir)
  assert results == reference_run[1]
  assert "checkpoints/32" in caplog.text and "earlier checkpoint" in caplog.text
  assert (workdir / "corrupt_checkpoints" / "32").is_dir()
  manifest = RunDir(workdir).read_manifest()
  assert [s["start_step"] for s in manifest["sessions"]] == [0, 30]
  events = RunDir(workdir).events()
  assert without_timing(events) == without_timing(
      RunDir(reference_run[0]).events())
  comparison = reproduce.compare_runs(reference_run[0], workdir)
  assert comparison.identical, reproduce.format_summary(comparison)


# Unverified steps and non-finite values (issue 27, item 2).

def forget_checksums(workdir: pathlib.Path, step: int) -> None:
  """Drops ``step``'s entry from checksums.json: a step committed just
  before a kill -9, or saved before ferjax recorded checksums."""
  path = workdir / "checkpoints" / "checksums.json"
  recorded = json.loads(path.read_text())
  recorded.pop(str(step), None)
  path.write_text(json.dumps(recorded))


def nan_into(workdir: pathlib.Path, step: int, template=None) -> None:
  """Rewrites ``step`` with NaN in its largest kernel and no checksums: what
  a flipped exponent bit in an unverified step reads back as.

  ``template``: the state to restore it as (default: model variables).
  """
  path = workdir / "checkpoints"
  with checkpoint_lib.Checkpoints(path, read_only=True) as ckpt:
    saved = (ckpt.restore_variables(step) if template is None
             else ckpt.restore(step, template))
    metrics = ckpt.metrics(step)
  leaves, treedef = jax.tree.flatten(
      saved["params"] if template is None else saved.params)
  largest = max(range(len(leaves)), key=lambda i: leaves[i].size)
  leaves[largest] = np.array(leaves[largest])
  leaves[largest].reshape(-1)[:3] = np.nan
  params = treedef.unflatten(leaves)
  saved = ({**saved, "params": params} if template is None
           else saved.replace(params=params))
  shutil.rmtree(path / str(step))
  with checkpoint_lib.Checkpoints(path) as ckpt:
    ckpt.save(step, saved, metrics)
  forget_checksums(workdir, step)


def test_a_saved_step_is_verified_once_committed(tmp_path):
  """Without waiting for the next save: a kill -9 then loses no checksum."""
  ckpt = checkpoint_lib.Checkpoints(tmp_path / "c", keep=2)
  tree = {"w": np.arange(1000, dtype=np.float32)}
  ckpt.save(1, tree)
  deadline = time.monotonic() + 60
  while not ckpt.is_verified(1) and time.monotonic() < deadline:
    ckpt.record_committed()
    time.sleep(0.02)
  assert ckpt.is_verified(1)
  recorded = json.loads((tmp_path / "c" / "checksums.json").read_text())
  assert set(recorded["1"]) == {
      str(p.relative_to(tmp_path / "c" / "1"))
      for p in (tmp_path / "c" / "1").rglob("*") if p.is_file()}
  ckpt.close()


def test_hashing_never_blocks_the_caller(tmp_path, monkeypatch):
  """While a step is being hashed, the trainer's calls return at once."""
  gate = threading.Event()
  real = checkpoint_lib._file_hashes

  def slow(step_dir):  # The real hashes, once the test lets them through.
    assert gate.wait(60)
    return real(step_dir)

  monkeypatch.setattr(checkpoint_lib, "_file_hashes", slow)
  ckpt = checkpoint_lib.Checkpoints(tmp_path / "c", keep=3)
  tree = {"w": np.arange(1000, dtype=np.float32)}
  ckpt.save(1, tree)
  start = time.monotonic()
  for _ in range(200):
    ckpt.record_committed()
    time.sleep(0.005)
  ckpt.save(2, tree)
  ckpt.record_committed()
  assert time.monotonic() - start < 10
  assert not ckpt.is_verified(1)
  gate.set()
  ckpt.wait()
  assert ckpt.is_verified(1) and ckpt.is_verified(2)
  ckpt.close()


def test_the_trainer_records_a_step_before_the_next_save(synthetic_data_dir,
                                                         tmp_path):
  """Killed between two saves, the latest step already has its checksums.

  Checkpoints at the two epoch ends only (steps 48 and 96): step 48's
  checksums must appear while the second epoch trains, not when step 96
  is saved (after its evaluation is in metrics.jsonl).
  """
  args = ["train", "--config", QUICKSTART, "--workdir", str(tmp_path)] + [
      f"--config.{o}" for o in tiny_overrides(
          synthetic_data_dir, **{"input.train_split": "train[:3072]",
                                 "checkpoint.every_steps": 0})]
  proc = run_cli(args)
  checksums = tmp_path / "checkpoints" / "checksums.json"
  deadline = time.monotonic() + 240
  try:
    while time.monotonic() < deadline and proc.poll() is None:
      if checksums.exists() and "48" in json.loads(checksums.read_text()):
        break
      time.sleep(0.02)
    events = RunDir(tmp_path).events()
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
  assert "48" in json.loads(checksums.read_text())
  assert max(e["step"] for e in events) < 96, "recorded only at the next save"


def test_an_unverified_step_is_named_and_stays_unverified(reference_run,
                                                          tmp_path, caplog):
  workdir = copy_run(reference_run, tmp_path)
  run = RunDir(workdir)
  with run.checkpoints(run.read_config()) as ckpt:
    best = run.resolve_step(ckpt, "best")
  forget_checksums(workdir, best)
  proc = ferjax_cli("eval", "--workdir", str(workdir))
  assert proc.returncode == 0, proc.stderr
  assert f"checkpoints/{best} is unverified" in proc.stderr
  proc = ferjax_cli("export", "--workdir", str(workdir), "--out",
             str(tmp_path / "out"))
  assert proc.returncode == 0, proc.stderr
  assert f"exporting step {best}, which is unverified" in proc.stderr
  exported = RunDir(tmp_path / "out")
  assert exported.read_manifest()["exported_from"]["verified"] is False
  with exported.checkpoints(exported.read_config()) as ckpt:
    assert ckpt.all_steps() == [best] and not ckpt.is_verified(best)
  # A verified step exports verified.
  other = max(json.loads(
      (workdir / "checkpoints" / "checksums.json").read_text()), key=int)
  proc = ferjax_cli("export", "--workdir", str(workdir), "--out",
             str(tmp_path / "out2"), "--checkpoint", other)
  assert proc.returncode == 0 and "unverified" not in proc.stderr, proc.stderr
  assert RunDir(tmp_path / "out2").read_manifest()["exported_from"][
      "verified"] is True


def test_non_finite_weights_of_an_unverified_step_are_refused(reference_run,
                                                              tmp_path):
  """The probe: no checksum, a flipped exponent; eval gave loss NaN, exit 0."""
  out = tmp_path / "exported"
  assert ferjax_cli("export", "--workdir", str(reference_run[0]), "--out",
             str(out)).returncode == 0
  step = json.loads((out / "manifest.json").read_text())["exported_from"][
      "step"]
  nan_into(out, step)
  assert_one_clean_error(ferjax_cli("eval", "--workdir", str(out)),
                         f"checkpoints/{step}", "['params']", "non-finite")
  proc = ferjax_cli("predict", "--workdir", str(out), str(tmp_path / "x.png"))
  assert proc.returncode == 2 and "non-finite" in proc.stderr, proc.stderr
  assert f"checkpoints/{step}" in proc.stderr
  assert_one_clean_error(ferjax_cli("export", "--workdir", str(out), "--out",
                             str(tmp_path / "again")), "non-finite")
  assert not (tmp_path / "again").exists()


def test_resume_neither_trusts_nor_vouches_for_an_unverified_step(
    reference_run, synthetic_data_dir, tmp_path, caplog):
  """Step 32 unverified and holding NaNs: resume falls back to step 30,
  itself unverified, and finishes exactly; 30 gets no checksums then."""
  workdir = copy_run(reference_run, tmp_path)
  run = RunDir(workdir)
  config = run.read_config()
  template = setup_lib.training(config, Parallel.from_config(
      config.parallel)).init_state()
  nan_into(workdir, 32, template)
  forget_checksums(workdir, 30)
  results = loop.train_and_evaluate(tiny_config(synthetic_data_dir), workdir)
  assert results == reference_run[1]
  assert "checkpoints/32: ['params']" in caplog.text
  assert "checkpoints/30 is unverified" in caplog.text
  assert [s["start_step"] for s in run.read_manifest()["sessions"]] == [0, 30]
  recorded = json.loads((workdir / "checkpoints" / "checksums.json").read_text())
  assert "32" in recorded and "30" not in recorded


def test_non_finite_outputs_of_finite_weights_are_errors(synthetic_data_dir,
                                                        tmp_path):
  """Weights of 1e30 are finite but overflow the activations: eval and
  predict say so, naming the checkpoint, instead of scoring NaN."""
  model = create_model("lenet5", num_classes=7)
  variables = jax.device_get(model.init(jax.random.PRNGKey(0),
                                        np.zeros((1, 32, 32, 3))))
  variables = {"params": jax.tree.map(lambda x: x * 1e30,
                                      variables["params"]),
               "batch_stats": {}}
  config = tiny_config(synthetic_data_dir, **{"input.mean": (0.5,),
                                              "input.std": (0.25,)})
  source = tmp_path / "weights.bin"
  source.write_bytes(b"weights")
  out = write_imported(tmp_path / "huge", config, variables,
                       class_names=[f"c{i}" for i in range(7)],
                       image_shape=(48, 48, 1), source_file=source,
                       source={"format": "test"}, argv=["convert"])
  with pytest.raises(ValueError, match=r"huge/checkpoints/0 gives non-finite"):
    evaluate.evaluate_run(str(out))
  crops = np.zeros((2, 48, 48, 1), np.uint8)
  with pytest.raises(NonFiniteScores, match=r"huge/checkpoints/0 gives non-"):
    load_classifier(str(out)).predict(crops)


def test_a_runs_config_with_a_nan_mean_is_refused(reference_run, tmp_path):
  """The probe: input.mean [NaN] in config.json evaluated at chance, exit 0."""
  workdir = copy_run(reference_run, tmp_path)
  config = json.loads((workdir / "config.json").read_text())
  config["input"]["mean"] = [float("nan")]
  (workdir / "config.json").write_text(json.dumps(config))
  assert_one_clean_error(ferjax_cli("eval", "--workdir", str(workdir)),
                         "config.json", "config.input.mean", "finite")
  with pytest.raises(RunDirError, match=r"config\.input\.mean"):
    load_classifier(str(workdir))


# Runs written by an earlier ferjax (item 11).

def old_layout(reference_run, tmp_path: pathlib.Path) -> pathlib.Path:
  """The reference run as the first ferjax release would have left it."""
  workdir = copy_run(reference_run, tmp_path)
  old_fields = json.loads(OLD_CONFIG.read_text())
  saved = json.loads((workdir / "config.json").read_text())

  def keep(new, old):
    return {k: keep(v, old[k]) if isinstance(v, dict) and old.get(k) else v
            for k, v in new.items() if k in old}

  (workdir / "config.json").write_text(json.dumps(keep(saved, old_fields)))
  (workdir / "checkpoints" / "checksums.json").unlink()
  return workdir


def test_an_old_run_evaluates_predicts_and_resumes(reference_run,
                                                   synthetic_data_dir,
                                                   tmp_path):
  workdir = old_layout(reference_run, tmp_path)
  assert "optimizer" in json.loads(OLD_CONFIG.read_text())
  legacy = RunDir(workdir).legacy_fields()
  assert legacy["optimizer.freeze_batch_stats"] is False
  assert legacy["input.pipeline"] == "memory"

  proc = ferjax_cli("eval", "--workdir", str(workdir), "--checkpoint", "latest",
             "--json")
  assert proc.returncode == 0, proc.stderr
  printed = json.loads(proc.stdout.strip().splitlines()[-1])["results"]
  final = reference_run[1]["test"]
  assert printed["test"]["confusion_matrix"] == final["confusion_matrix"]
  assert printed["test"]["loss"] == pytest.approx(final["loss"], rel=1e-6)
  classifier = load_classifier(str(workdir))
  assert len(classifier.class_names) == 7

  # Today's config, with fields the old run lacked: it resumes (finished,
  # so no step runs) and the manifest says which values were assumed.
  config = tiny_config(synthetic_data_dir, **{
      "optimizer.freeze_batch_stats": True})
  assert loop.train_and_evaluate(config, workdir) == reference_run[1]
  manifest = RunDir(workdir).read_manifest()
  assert manifest["legacy_fields"]["optimizer.freeze_batch_stats"] is False
  assert len(manifest["sessions"]) == 2
  assert RunDir(workdir).read_config().optimizer.freeze_batch_stats is False


def leaves(tree: dict, prefix: str = "") -> list[str]:
  out = []
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out += leaves(value, f"{prefix}{key}.")
    else:
      out.append(f"{prefix}{key}")
  return out


def test_upgrade_fills_every_field_added_since_the_first_release():
  """Each field of today's base config is in the old one or has a legacy value.

  A field added without an entry in config.LEGACY_VALUES fails here.
  """
  old = json.loads(OLD_CONFIG.read_text())
  upgraded, added = config_lib.upgrade(old)
  assert set(added) == set(config_lib.LEGACY_VALUES)
  missing = set(leaves(config_lib.base_config().to_dict())) - set(
      leaves(upgraded))
  assert not missing, f"fields with no legacy value: {sorted(missing)}"
  config_checks.validate(config_lib.from_dict(upgraded))
  assert config_lib.upgrade(upgraded) == (upgraded, {})


# Unreadable files name themselves; reports go on (items 8 and 10).

def test_every_damaged_json_names_itself(tmp_path):
  make_run(tmp_path / "a", seed=0, lr=0.1, accuracies=[0.5])
  run = RunDir(tmp_path / "a")
  (run.path / "config.json").write_text("{not json")
  with pytest.raises(RunDirError, match=r"a/config\.json: not valid JSON"):
    run.read_config()
  assert_one_clean_error(ferjax_cli("eval", "--workdir", str(run.path)),
                         "config.json", "not valid JSON")
  (run.path / "manifest.json").write_bytes(b"\xff\xfe")
  with pytest.raises(RunDirError, match=r"manifest\.json"):
    run.read_manifest()
  assert run.status() == "unfinished"
  (run.path / sweep.STATUS_FILE).write_text("")
  trial = sweep.Trial("a", {}, run.path)
  assert trial.read_status() == {}


def _edited_bundled_model(tmp_path: pathlib.Path, name: str, dotted: str,
                          value) -> pathlib.Path:
  """A copy of the bundled LeNet-5 with one field of ``name`` set."""
  from ferjax import pretrained
  workdir = tmp_path / "run"
  shutil.copytree(pretrained.FER2013_LENET5, workdir)
  record = json.loads((workdir / name).read_text())
  config_lib.set_field(record, dotted, value)
  (workdir / name).write_text(json.dumps(record))
  return workdir


@pytest.mark.parametrize("name,dotted,value,commands,message", [
    ("config.json", "batch_size", "lots", ("eval", "predict", "export"),
     "config.json: config.batch_size: expected a positive integer, got "
     "'lots'"),
    ("config.json", "batch_size", 10**12, ("eval", "predict", "export"),
     "config.json: config.batch_size: expected at most 65536, got "
     "1000000000000"),
    ("config.json", "model.dtype", "float1024", ("eval", "predict", "export"),
     "config.json: config.model.dtype: expected 'float32' or 'bfloat16', "
     "got 'float1024'"),
    # Only a converted run (its manifest says converted_from) may name it.
    ("config.json", "input.dataset", "imagenet", ("eval", "predict"),
     "config.json: config.input.dataset: expected one of synthetic_fer, "
     "fer2013, ck_plus, raf_db, affectnet, fer_plus, jaffe, image_folder, "
     "got 'imagenet'"),
    ("config.json", "loss.label_smoothing", "x", ("eval", "predict"),
     "config.json: a field holds a value of the wrong type"),
    ("manifest.json", "dataset", "hello", ("predict", "export"),
     "manifest.json: dataset: expected an object with class_names and "
     "image_shape, got 'hello'"),
    ("manifest.json", "dataset.class_names", ["a", "a"], ("predict",),
     "manifest.json: dataset.class_names: expected a list of two or more "
     "distinct names, got ['a', 'a']"),
    # Well-formed, but not the model the checkpoint holds.
    ("manifest.json", "dataset.class_names", ["a", "b"], ("predict",),
     "run: its checkpoint does not fit the model that config.json and "
     "manifest.json describe (LeNet5, 2 classes): params/Dense_1/bias is "
     "(7,), expected (2,)"),
], ids=["batch_lots", "batch_huge", "dtype", "imagenet", "wrong_type",
        "dataset_hello", "names_repeated", "names_too_few"])
def test_hand_edited_run_files_are_one_line_errors_in_every_command(
    tmp_path, monkeypatch, capsys, name, dotted, value, commands, message):
  from ferjax import cli as cli_lib
  from ferjax.commands import predict as predict_command
  workdir = _edited_bundled_model(tmp_path, name, dotted, value)
  monkeypatch.chdir(tmp_path)  # Messages name the run as given: "run".
  argv = {"eval": ["eval", "--workdir", "run", "--data-dir", "nowhere"],
          "export": ["export", "--workdir", "run", "--out", "out"]}
  for command in commands:
    if command == "predict":
      code = predict_command.main(["--workdir", "run", "--no-compile-cache",
                                   "face.png"])
    else:
      code = cli_lib.main(argv[command])
    err = capsys.readouterr().err
    assert code == 2, (command, err)
    assert message in err, (command, err)
    assert len(err.strip().splitlines()) == 1, (command, err)
  assert not (tmp_path / "out").exists()
  assert workdir.is_dir()


def test_report_lists_unreadable_runs_and_reports_the_rest(tmp_path, capsys):
  for seed, lr in ((0, 0.1), (1, 0.1), (0, 0.2), (1, 0.2)):
    make_run(tmp_path / f"lr={lr}" / f"seed={seed}", seed=seed, lr=lr,
             accuracies=[0.5, 0.6])
  (tmp_path / "lr=0.1" / "seed=1" / "config.json").unlink()
  (tmp_path / "lr=0.2" / "seed=0" / "manifest.json").write_text("")
  assert report_command.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
  printed = capsys.readouterr().out
  assert printed.count("| lr=") == 2
  md = (tmp_path / "out" / "report.md").read_text()
  assert "2 runs" in md and "2 unreadable" in md
  assert "lr=0.1/seed=1: not reported, unreadable:" in md
  assert "config.json does not exist" in md
  assert "lr=0.2/seed=0: not reported, unreadable:" in md
  assert "manifest.json: not valid JSON" in md
  assert "Not reported" in printed


def test_imported_weights_are_a_run_directory(tmp_path):
  """What a converter writes reads back like a trained run, atomically."""
  model = create_model("lenet5", num_classes=3)
  variables = jax.device_get(model.init(jax.random.PRNGKey(0),
                                        np.zeros((1, 32, 32, 3))))
  variables = {"params": variables["params"], "batch_stats": {}}
  config = config_lib.base_config()
  config.input.image_size, config.input.channels = (32, 32), 3
  config.input.mean, config.input.std = (0.5,), (0.25,)
  source = tmp_path / "weights.bin"
  source.write_bytes(b"weights")
  out = write_imported(tmp_path / "imported", config, variables,
                       class_names=["a", "b", "c"], image_shape=(48, 48, 1),
                       source_file=source, source={"format": "test"},
                       argv=["convert"])
  run = RunDir(out)
  assert run.is_finished()
  manifest = run.read_manifest()
  assert manifest["converted_from"]["format"] == "test"
  assert manifest["converted_from"]["bytes"] == 7
  classifier = load_classifier(str(out))
  crops = np.random.default_rng(0).integers(0, 255, (2, 48, 48, 1), np.uint8)
  expected = jax.nn.softmax(model.apply(variables, preprocess.to_model_input(
      crops / 255.0, image_size=(32, 32), channels=3, mean=(0.5,),
      std=(0.25,))))
  np.testing.assert_allclose(classifier.predict(crops), expected, atol=1e-5)
  with pytest.raises(FileExistsError, match="never overwrites"):
    write_imported(out, config, variables, class_names=["a", "b", "c"],
                   image_shape=(48, 48, 1), source_file=source,
                   source={"format": "test"}, argv=["convert"])
  assert {p.name for p in tmp_path.iterdir()} == {"weights.bin", "imported"}
