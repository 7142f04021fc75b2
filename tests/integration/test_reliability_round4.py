"""Reliability, round 4 (issue 40): no command destroys a run, no file in a
run directory can hang a command, no absurd value is trusted.

One test (or more) per item of the issue, named for it. The trained run is
the session's tiny quickstart run (``reference_run``), copied where a test
changes it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ferjax import calibration
from ferjax import cli
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.experiment import sweep as sweep_lib
from ferjax.experiment.report import write_report
from ferjax.export import portable
from ferjax.recognition import classifier as classifier_lib
from ferjax.recognition import pipeline
from ferjax.run import files
from ferjax.run import model as model_lib
from ferjax.run.run_dir import RunDir, RunDirError, export_variables
from ferjax.evaluate import calibrate
from ferjax.evaluate import run_evaluation
from helpers import (REPO, DarkSquares, ferjax_cli, needs_mounts, run_cli,
                     tiny_config)


def _copy(reference_run, tmp_path, name: str = "run"):
  workdir = tmp_path / name
  shutil.copytree(reference_run[0], workdir)
  return workdir


def _best_step(workdir) -> int:
  run = RunDir(workdir)
  with run.checkpoints(run.read_config()) as ckpt:
    return run.resolve_step(ckpt, "best")


def _record(step: int, temperature: float = 2.0) -> dict:
  """A calibration record as calibrate writes it (the measures made up)."""
  bins = {"count": [1] * 15, "confidence": [0.5] * 15, "accuracy": [0.5] * 15}
  return {"temperature": temperature, "split": "test[:300]",
          "checkpoint": "best", "step": step, "num_examples": 300,
          "ece_bins": 15, "nll": 1.0, "ece": 0.1, "nll_calibrated": 0.9,
          "ece_calibrated": 0.05,
          "reliability": {"before": bins, "after": bins}}


# 1. eval --saliency-by-class never overwrites (and fails before the work).


def test_item1_saliency_by_class_never_overwrites_a_file(reference_run,
                                                         tmp_path, capsys):
  workdir = _copy(reference_run, tmp_path)
  config = workdir / "config.json"
  before = config.read_bytes()
  start = time.monotonic()
  code = cli.main(["eval", "--workdir", str(workdir), "--saliency-by-class",
                   str(config)])
  captured = capsys.readouterr()
  assert code == 2
  assert f"{config}: already exists; eval never overwrites" in captured.err
  assert config.read_bytes() == before
  assert captured.out == ""  # Refused before evaluating.
  assert time.monotonic() - start < 10


# 2. A FIFO, a link to a device or an oversize file in a run directory is
# refused, never read.

def test_item2_fifos_devices_and_oversize_files_are_refused(reference_run,
                                                            tmp_path):
  """Read in this process: a FIFO read as before would block the test
  until its timeout, a link to /dev/zero fill the memory."""
  workdir = _copy(reference_run, tmp_path)
  run = RunDir(workdir)
  os.mkfifo(workdir / "calibration.json")
  (workdir / "metrics.jsonl").unlink()
  os.mkfifo(workdir / "metrics.jsonl")
  with pytest.raises(RunDirError) as error:
    run.read_calibration()
  assert str(error.value) == (
      f"{workdir / 'calibration.json'}: a FIFO, not a regular file; ferjax "
      "reads only regular files from a run directory")
  with pytest.raises(RunDirError, match="metrics.jsonl: a FIFO, not a "
                     "regular file"):
    run.read_events()
  # report lists the run as unreadable, with the reason, and goes on.
  with pytest.raises(FileNotFoundError,
                     match="(?s)no run directories that can be read"
                     ".*metrics.jsonl: a FIFO"):
    write_report([workdir], tmp_path / "out")
  # A link to a device: refused by what it is, not read without end.
  (workdir / "calibration.json").unlink()
  (workdir / "calibration.json").symlink_to("/dev/zero")
  with pytest.raises(RunDirError, match="calibration.json: a device, not a "
                     "regular file"):
    run.read_calibration()
  # Larger than ferjax writes: refused by its size, before reading it.
  big = tmp_path / "big"
  big.mkdir()
  with open(big / "config.json", "wb") as f:  # Sparse: 2 GiB of holes.
    f.truncate(2 << 30)
  with pytest.raises(RunDirError) as error:
    RunDir(big).read_config_dict()
  assert str(error.value) == (
      f"{big / 'config.json'}: {2 << 30} bytes, more than the limit of "
      f"{files.MAX_RECORD_BYTES} bytes (64 MiB) for this file; it is not "
      "what ferjax wrote")


# 3. and 12. train.steps_per_call: bounded, and named in every error.


@pytest.mark.parametrize("k", ["140", "17"])
def test_item3_steps_per_call_above_the_cap_is_refused(k):
  config = tiny_config("/nonexistent", log_every_steps=140 * 17,
                       **{"checkpoint.every_steps": 0,
                          "train.steps_per_call": k})
  with pytest.raises(config_lib.ConfigError,
                     match=r"config.train.steps_per_call: expected at most "
                     f"{config_checks.MAX_STEPS_PER_CALL}"):
    config_checks.validate(config)


def test_item12_a_non_ascii_digit_steps_per_call_names_the_field():
  config = tiny_config("/nonexistent", **{"train.steps_per_call": "²"})
  with pytest.raises(config_lib.ConfigError,
                     match=r"config.train.steps_per_call: expected 'auto' or "
                     "a positive integer, got '²'"):
    config_checks.validate(config)


# 4. A temperature outside calibrate's range is damage; calibration keeps
# every argmax.


@pytest.mark.parametrize("temperature", [1e300, 1e-300, 100.5])
def test_item4_a_temperature_outside_the_fitted_range_is_damage(
    reference_run, tmp_path, temperature):
  workdir = _copy(reference_run, tmp_path)
  step = _best_step(workdir)
  (workdir / "calibration.json").write_text(json.dumps(
      _record(step, temperature)))
  message = (rf"{workdir / 'calibration.json'}: temperature .* of step "
             rf"{step} is outside \[0.01, 100\]")
  with pytest.raises(RunDirError, match=message):
    RunDir(workdir).temperature(step)
  with pytest.raises(RunDirError, match=message):
    classifier_lib.load_classifier(workdir)


def test_item4_calibration_never_changes_the_argmax(reference_run):
  loaded = model_lib.load_model(reference_run[0])
  config, dataset = loaded.config, loaded.dataset
  crops = np.random.default_rng(0).integers(
      0, 256, (32, *dataset["image_shape"]), np.uint8)
  labels = []
  for temperature in (None, *calibration.TEMPERATURE_RANGE):
    classifier = classifier_lib.classifier_from_model(
        loaded.model, loaded.variables, class_names=dataset["class_names"],
        crop_shape=dataset["image_shape"], image_size=config.input.image_size,
        channels=config.input.channels, mean=config.input.mean,
        std=config.input.std, temperature=temperature)
    labels.append(classifier.predict(crops).argmax(-1))
  np.testing.assert_array_equal(labels[1], labels[0])
  np.testing.assert_array_equal(labels[2], labels[0])


# 5. Calibration and verification travel with an export.


def test_item5_export_carries_calibration_and_onnx_says_verified(
    reference_run, tmp_path):
  workdir = _copy(reference_run, tmp_path)
  step = _best_step(workdir)
  run = RunDir(workdir)
  run.write_calibration(_record(step - 1, 3.0))  # Another step's: left.
  run.write_calibration(_record(step, 2.0))
  out = export_variables(workdir, tmp_path / "export", argv=["test"])
  assert RunDir(out).read_calibrations() == {step: _record(step, 2.0)}
  assert classifier_lib.load_classifier(out).temperature == 2.0
  meta = portable.metadata(model_lib.load_model(workdir), workdir)
  assert meta["ferjax.checkpoint_verified"] == "true"
  (run.checkpoints_path / "checksums.json").unlink()
  meta = portable.metadata(model_lib.load_model(workdir), workdir)
  assert meta["ferjax.checkpoint_verified"] == "false"


# 6. An ensemble's members carry their own calibrated flag; the top one is
# honest.


def test_item6_ensemble_members_each_say_whether_they_are_calibrated(
    reference_run, tmp_path):
  plain = _copy(reference_run, tmp_path, "plain")
  scaled = _copy(reference_run, tmp_path, "scaled")
  RunDir(scaled).write_calibration(_record(_best_step(scaled), 2.0))
  image = np.full((300, 300, 3), 230, np.uint8)
  image[100:190, 100:190] = 0
  ensemble = classifier_lib.load_ensemble([str(plain), str(scaled)])
  (face,) = pipeline.recognize(image, ensemble, DarkSquares())
  mixed = face.to_json()
  assert [m["calibrated"] for m in mixed["members"]] == [False, True]
  assert mixed["calibrated"] == "partial"
  # True only if every member is calibrated, False if none is.
  assert calibration.calibrated_flag([True, True]) is True
  assert calibration.calibrated_flag([False, False]) is False


# 7., 8. and 12.: one report over a run with a corrupt calibration.json, a
# run whose metrics' last line is torn, and a sweep with a pending trial.


@pytest.fixture(scope="module")
def damaged_report(reference_run, tmp_path_factory):
  top = tmp_path_factory.mktemp("damaged")
  corrupt = _copy(reference_run, top, "corrupt_calibration")
  (corrupt / "calibration.json").write_text('{"temperature": ')
  torn = _copy(reference_run, top, "torn")
  events = RunDir(torn).events()
  with open(torn / "metrics.jsonl", "a") as f:
    f.write('{"step": 99999, "split": "test", "accur')
  sweep = top / "sweep"
  (sweep / "t0").mkdir(parents=True)
  sweep_lib.Trial("t0", {}, sweep / "t0").write_status(
      {"status": "pending", "attempts": 0})
  (sweep / "t0" / ".lock").write_text("")
  (sweep / sweep_lib.SWEEP_FILE).write_text(json.dumps(
      {"trials": [{"name": "t0", "status": "pending", "overrides": {}}]}))
  tables = write_report([top], top / "out")
  final = max(e["step"] for e in events)
  return top / "out", tables, final


def test_item7_a_corrupt_calibration_file_is_a_note_not_the_end(
    damaged_report):
  out, tables, _ = damaged_report
  md = (out / "report.md").read_text()
  assert "| corrupt_calibration |" in tables
  assert ("corrupt_calibration: calibration not reported: "
          f"{out.parent / 'corrupt_calibration' / 'calibration.json'}: not "
          "valid JSON") in md


def test_item8_a_torn_metrics_line_is_flagged_in_the_tables_and_csv(
    damaged_report):
  out, tables, final = damaged_report
  flag = f"finished, metrics torn after step {final}"
  (row,) = [line for line in tables.splitlines() if "| torn |" in line]
  assert flag in row
  csv_rows = (out / "report.csv").read_text().splitlines()
  assert any(r.startswith("torn,") and flag in r for r in csv_rows)
  assert "## Torn metrics" in tables and "line " in tables


def test_item12_a_pending_sweep_trial_is_not_unreadable(damaged_report):
  out, tables, _ = damaged_report
  md = (out / "report.md").read_text()
  assert "unreadable" not in md and "unreadable" not in tables
  assert "t0: pending (its sweep has not finished it yet)" in md


# 9. All or nothing: a failed export or calibrate --out leaves nothing that
# blocks the retry.


def test_item9_new_files_are_written_all_or_nothing(tmp_path):
  (tmp_path / "in_the_way").write_text("")
  with pytest.raises(OSError):
    files.write_new_files({tmp_path / "model.json": b"{}",
                           tmp_path / "in_the_way" / "model": b"x"})
  assert sorted(p.name for p in tmp_path.iterdir()) == ["in_the_way"]
  files.write_new(tmp_path / "a", b"1")
  with pytest.raises(FileExistsError):
    files.write_new(tmp_path / "a", b"2")
  assert (tmp_path / "a").read_bytes() == b"1"


@pytest.mark.slow
@needs_mounts
def test_item9_stablehlo_export_on_a_full_disk_leaves_nothing(reference_run,
                                                              tmp_path):
  (tmp_path / "small").mkdir()
  out = tmp_path / "small" / "model.stablehlo"
  proc = subprocess.run(
      ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
       'mount -t tmpfs -o size=64k tmpfs "$0" && "$@"; echo "rc=$?"; '
       'ls -A "$0"', str(tmp_path / "small"), sys.executable, "-m",
       "ferjax.cli", "export", "--workdir", str(reference_run[0]),
       "--format", "stablehlo", "--out", str(out)],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  lines = proc.stdout.splitlines()
  assert "rc=2" in lines, proc.stderr[-2000:]
  assert lines[-1] == "rc=2", lines  # Nothing listed after it.
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_item9_calibrate_out_killed_midway_leaves_nothing(reference_run,
                                                          tmp_path):
  out = tmp_path / "calibrated"
  proc = run_cli(["calibrate", "--workdir", str(reference_run[0]), "--out",
                  str(out)])
  deadline = time.monotonic() + 120
  # Killed once the copy's checkpoint is written, before it is calibrated.
  while time.monotonic() < deadline and proc.poll() is None and not any(
      (p / "checkpoints").is_dir() for p in tmp_path.iterdir()):
    time.sleep(0.02)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert not out.exists()
  proc = ferjax_cli("calibrate", "--workdir", str(reference_run[0]),
                    "--out", str(out))
  assert proc.returncode == 0, proc.stderr
  assert RunDir(out).read_calibration()["temperature"] > 0


def test_item9_calibrate_out_that_fails_leaves_nothing(reference_run,
                                                       tmp_path, capsys):
  out = tmp_path / "calibrated"
  code = cli.main(["calibrate", "--workdir", str(reference_run[0]), "--out",
                   str(out), "--split", "test[:1]"])
  assert code == 2
  assert "fewer than the 50" in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []


# 10. Calibration edge cases.


def test_item10_degenerate_fits_are_refused():
  rng = np.random.default_rng(0)
  with pytest.raises(calibration.DegenerateFit, match="1 examples, fewer"):
    calibration.fit_temperature([[2.0, 0.0]], [0])
  with pytest.raises(calibration.DegenerateFit, match="one class"):
    calibration.fit_temperature(rng.normal(size=(200, 7)), np.zeros(200))
  # Right on every example: sharper is always better.
  labels = np.arange(200) % 7
  with pytest.raises(calibration.DegenerateFit, match="T = 0.01"):
    calibration.fit_temperature(np.eye(7)[labels] * 5, labels)
  # Scores unrelated to the labels: flatter is always better.
  with pytest.raises(calibration.DegenerateFit, match="T = 100"):
    calibration.fit_temperature(rng.normal(size=(5000, 7)) * 5,
                                rng.integers(0, 7, 5000))
  with pytest.raises(calibration.DegenerateFit, match="does not depend"):
    calibration.fit_temperature(np.zeros((200, 7)), labels)


def test_item10_calibrate_on_one_example_stores_nothing(reference_run,
                                                        tmp_path):
  workdir = _copy(reference_run, tmp_path)
  with pytest.raises(calibration.DegenerateFit,
                     match=r"split 'test\[:1\]': 1 examples"):
    calibrate.calibrate_run(workdir, split="test[:1]")
  assert not (workdir / "calibration.json").exists()


def test_item10_one_temperature_per_step_and_old_files_still_read(tmp_path):
  run = RunDir(tmp_path)
  (tmp_path / "calibration.json").write_text(json.dumps(_record(800, 1.5)))
  assert run.temperature(800) == 1.5  # A single record of before.
  run.write_calibration(_record(872, 2.0))
  run.write_calibration(_record(800, 1.7))  # Replaces only its own step.
  assert {s: r["temperature"] for s, r in run.read_calibrations().items()
          } == {872: 2.0, 800: 1.7}
  assert run.read_calibration()["step"] == 800  # The last fitted.
  assert run.temperature(872) == 2.0 and run.temperature(1) is None
  # A damaged file is what calibrating again repairs.
  (tmp_path / "calibration.json").write_text('{"by_step": ')
  run.write_calibration(_record(872, 2.5))
  assert run.read_calibrations() == {872: _record(872, 2.5)}


def test_item10_eval_nll_and_calibration_see_the_loss_s_numbers(
    reference_run, tmp_path):
  """input.std=[1e-20]: huge logits; the NLL is the loss, not a clipped
  2.46, and calibrate fits on the same unclipped log-probabilities."""
  workdir = _copy(reference_run, tmp_path)
  config = json.loads((workdir / "config.json").read_text())
  config["input"]["std"] = [1e-20]
  (workdir / "config.json").write_text(json.dumps(config))
  result = run_evaluation.evaluate_run(str(workdir), split="test[:100]")
  (measured,) = result["results"].values()
  assert measured["loss"] > 1e6
  assert measured["calibration"]["nll"] == pytest.approx(measured["loss"],
                                                         rel=1e-3)
  logits, _, _ = run_evaluation.split_logits(str(workdir), split="test[:100]")
  assert logits.min() < np.log(np.finfo(np.float32).tiny)


# 11. Expected errors are one line, before the work.


def test_item11_report_out_an_existing_file_is_one_line(reference_run,
                                                        tmp_path, capsys):
  (tmp_path / "a_file").write_text("keep")
  code = cli.main(["report", str(reference_run[0]), "--out",
                   str(tmp_path / "a_file")])
  err = capsys.readouterr().err
  assert code == 2
  assert err == (f"ferjax report: error: {tmp_path / 'a_file'}: is a file, "
                 "expected a directory\n")
  assert (tmp_path / "a_file").read_text() == "keep"


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--detectors", "haar,bogus"], "--detectors: unknown 'bogus'"),
    (["--detectors", "haar", "--mtcnn-python", "/nonexistent/python"],
     "--mtcnn-python /nonexistent/python: cannot be run")])
def test_item11_detection_benchmark_checks_its_arguments_first(
    tmp_path, args, message):
  for part in ("photos", "resolution", "video"):
    (tmp_path / part).mkdir()
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks" / "detection.py"), "--data",
       str(tmp_path), *args], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert message in proc.stderr and "Traceback" not in proc.stderr


# 12. Smaller: checks before the work, --out a directory name.


def test_item12_unwritable_saliency_path_fails_before_evaluating(
    reference_run, capsys):
  start = time.monotonic()
  code = cli.main(["eval", "--workdir", str(reference_run[0]),
                   "--saliency-by-class", "/proc/ferjax/by_class.png"])
  captured = capsys.readouterr()
  assert code == 2
  assert "--saliency-by-class /proc/ferjax/by_class.png: cannot write" in (
      captured.err)
  assert captured.out == "" and time.monotonic() - start < 10


def test_item12_predict_explain_of_an_ensemble_creates_no_out(reference_run,
                                                              tmp_path):
  out = tmp_path / "annotated"
  assert cli.main(["predict", "--workdir", str(reference_run[0]),
                   "--workdir", str(reference_run[0]), "--explain", "--out",
                   str(out), str(tmp_path / "face.png")]) == 2
  assert not out.exists()


def test_item12_out_ending_in_a_separator_is_refused(tmp_path, capsys):
  code = cli.main(["export", "--pretrained", "--format", "onnx", "--out",
                   f"{tmp_path / 'dir'}/"])
  assert code == 2
  assert "ends in '/', which names a directory" in capsys.readouterr().err
  assert list(tmp_path.iterdir()) == []
