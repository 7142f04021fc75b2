"""What a user sees: `--help` lists every command, the bar and logs share a line."""

import contextlib
import io
import json
import logging
import re
import subprocess
import sys
import time

import pytest

from ferjax import cli
from ferjax.commands import sweep as sweep_command
from ferjax.commands import train as train_command
from ferjax.train.progress import Progress, duration
from helpers import QUICKSTART, REPO

COMMANDS = ("train", "eval", "crossval", "models", "data", "sweep", "report",
            "reproduce", "predict", "convert")


class _Terminal(io.StringIO):
  """An in-memory stream that says it is a terminal, as a TTY would."""

  def isatty(self) -> bool:
    return True


def _ferjax(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "ferjax.cli", *args],
                        capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_with_a_description():
  out = _ferjax("--help")
  assert out.returncode == 0, out.stderr
  listed = {line.split()[0]: line for line in out.stdout.splitlines()
            if line.startswith("    ") and line.split()}
  for command in COMMANDS:
    assert command in listed, f"{command} missing from ferjax --help"
  # predict is more than photos.
  assert "videos" in listed["predict"] and "camera" in listed["predict"]
  assert "Traceback" not in out.stderr


@pytest.mark.parametrize("group,sub", [("data", "prepare"),
                                       ("convert", "torchvision"),
                                       ("convert", "facemesh")])
def test_two_word_commands_have_help(group, sub):
  out = _ferjax(group, "--help")
  assert out.returncode == 0, out.stderr
  assert sub in out.stdout


def test_version_names_the_backend():
  out = _ferjax("--version")
  assert out.returncode == 0
  assert out.stdout.startswith("ferjax ") and "backend cpu" in out.stdout


def test_every_train_option_has_help():
  text = train_command.build_parser().format_help()
  for action in train_command.build_parser()._actions:
    if action.option_strings and action.help is None:
      pytest.fail(f"train {action.option_strings[0]} has no help text:\n"
                  f"{text}")


@pytest.fixture
def root_handler():
  """A root stream handler on a fake terminal, removed afterwards."""
  stream = _Terminal()
  handler = logging.StreamHandler(stream)
  handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
  root = logging.getLogger()
  root.addHandler(handler)
  old_level = root.level
  root.setLevel(logging.INFO)
  yield stream, handler
  root.setLevel(old_level)
  root.removeHandler(handler)


def test_log_lines_never_glue_to_the_bar(root_handler):
  stream, handler = root_handler
  bar = Progress(100, 0, 64, stream=stream)
  bar.update(1, "epoch 1/2")
  logging.getLogger("ferjax").info("step 1: test/accuracy=0.5")
  bar.update(2, "epoch 1/2")
  bar.close()
  assert handler in logging.getLogger().handlers  # restored on close
  # What a terminal shows: each '\r' returns to the line's start, and
  # erase-to-end-of-line shows nothing.
  screen = [line.split("\r")[-1].replace("\x1b[K", "")
            for line in stream.getvalue().split("\n")]
  log_lines = [line for line in screen if "test/accuracy" in line]
  assert log_lines == ["INFO step 1: test/accuracy=0.5"]


def test_eta_ignores_the_compiling_first_step():
  stream = _Terminal()
  bar = Progress(1000, 0, 64, stream=stream)
  bar.update(1)
  first = stream.getvalue()
  assert "ETA   --" in first  # no rate yet: the first step compiled
  bar.update(2)
  assert "step/s" in stream.getvalue()
  bar.close()


def test_the_bar_is_redrawn_at_most_ten_times_a_second():
  """Not once per step: thousands of steps a second would each pay a
  terminal write. The last step is always drawn."""
  stream = _Terminal()
  bar = Progress(2000, 0, 64, stream=stream)
  start = time.monotonic()
  for step in range(1, 2001):
    bar.update(step)
  elapsed = time.monotonic() - start
  draws = stream.getvalue().count("\r")
  assert draws <= elapsed * 10 + 2
  assert "2000/2000" in stream.getvalue()
  bar.close()


def test_no_bar_and_no_carriage_return_off_a_terminal():
  stream = io.StringIO()
  bar = Progress(10, 0, 8, stream=stream)
  for step in range(1, 11):
    bar.update(step)
  bar.close()
  assert stream.getvalue() == ""


def test_sweep_parallel_is_a_deprecated_alias(tmp_path):
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    code = sweep_command.main(["--config", "nope.py", "--workdir",
                               str(tmp_path), "--parallel", "2"])
  assert code == 2  # The missing file, after the notice.
  assert "--parallel is deprecated" in err.getvalue()
  assert "use --concurrent-trials" in err.getvalue()


def test_off_a_terminal_each_window_is_a_log_line(root_handler):
  _, handler = root_handler
  log_file = io.StringIO()  # Not a terminal: a batch job's log.
  handler.setStream(log_file)
  bar = Progress(100, 0, 64, stream=log_file)
  bar.update(1, "epoch 1/2")  # Not the end of a window: no line.
  window = {"loss": 1.23456, "accuracy": 0.5, "learning_rate": 0.001,
            "images_per_second": 812.4}
  bar.update(50, "epoch 1/2", window)
  bar.update(100, "epoch 2/2", window)
  bar.close()
  lines = log_file.getvalue().splitlines()
  assert len(lines) == 2 and "\r" not in log_file.getvalue()
  assert re.fullmatch(r"INFO step 50/100 \(epoch 1/2\): train loss 1\.2346, "
                      r"accuracy 0\.5000, lr 0\.001, 812 img/s, ETA \d+s",
                      lines[0]), lines[0]
  assert lines[1].startswith("INFO step 100/100 (epoch 2/2): train loss")
  assert "ETA" not in lines[1]


def test_on_a_terminal_the_window_stays_in_the_bar(root_handler):
  stream, _ = root_handler
  bar = Progress(100, 0, 64, stream=stream)
  bar.update(50, "epoch 1/2", {"loss": 1.0, "accuracy": 0.5})
  bar.close()
  assert "train loss" not in stream.getvalue()
  assert "50/100" in stream.getvalue()


def test_duration():
  assert [duration(s) for s in (0.4, 45, 750, 3 * 3600 + 5 * 60 + 9)] == [
      "0s", "45s", "12m30s", "3h05m"]


def test_train_into_a_log_file_shows_progress_lines(tmp_path,
                                                    synthetic_data_dir):
  """As a batch job sees it: stdout and stderr one file, not a terminal: a
  header saying what runs, then timestamped progress and eval lines."""
  overrides = {
      "input.data_dir": synthetic_data_dir,
      "input.train_split": "train[:512]",
      "evals": "{'test': {'split': 'test[:64]', 'tta': 'none'}}",
      "num_epochs": 1, "batch_size": 64, "log_every_steps": 2}
  log_path = tmp_path / "job.log"
  started = time.time()
  with open(log_path, "w") as log_file:
    proc = subprocess.run(
        [sys.executable, "-m", "ferjax.cli", "train", "--config",
         QUICKSTART, "--workdir",
         str(tmp_path / "run"), *(f"--config.{k}={v}"
                                  for k, v in overrides.items())],
        stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO, timeout=300)
  text = log_path.read_text()
  assert proc.returncode == 0, text
  stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO "
  lines = re.findall(
      rf"^{stamp}step (\d+)/8 \(epoch 1/1\): train loss \d+\.\d{{4}}, "
      r"accuracy \d\.\d{4}, lr [\d.e-]+, \d+ img/s(, ETA \S+)?$", text,
      re.M)
  assert [int(step) for step, _ in lines] == [2, 4, 6, 8], text
  assert all(eta for _, eta in lines[:-1]) and not lines[-1][1]
  assert "\r" not in text
  # The header, before the first step.
  header = text[:text.index("compiling the train step")]
  for pattern in (
      rf"^{stamp}config {re.escape(str(QUICKSTART))} with --config\.",
      rf"^{stamp}workdir {re.escape(str(tmp_path / 'run'))} \(new run\)$",
      rf"^{stamp}model lenet5: [\d,]+ parameters, float32$",
      rf"^{stamp}devices: \d+ x cpu \((shard_map|pmap)\), 1 process\(es\); "
      r"batch 64$",
      rf"^{stamp}data synthetic_fer: train 512 images \(train\[:512\], "
      r"in memory\), test 64$",
      rf"^{stamp}8 steps: 1 epochs of 8, evaluation every 1 epoch\(s\)$"):
    assert re.search(pattern, header, re.M), (pattern, header)
  assert re.search(rf"^{stamp}step 8: test loss \d+\.\d{{4}}, accuracy "
                   r"\d\.\d{4}, macro_f1 \d\.\d{4}$", text, re.M), text
  # Every metrics.jsonl event says when it was written.
  events = [json.loads(line) for line in
            (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  times = [e["wall_time"] for e in events]
  assert len(events) == 5 and started <= times[0] and times == sorted(times)
  assert times[-1] <= time.time()


def test_the_bar_shows_the_last_window_s_loss():
  stream = _Terminal()
  bar = Progress(100, 0, 64, stream=stream)
  bar.update(1, "epoch 1/2")
  assert "loss" not in stream.getvalue()  # No window yet.
  bar.update(50, "epoch 1/2", {"loss": 1.23456, "accuracy": 0.5})
  bar.update(100, "epoch 2/2")
  bar.close()
  last = stream.getvalue().split("\r")[-1]
  assert "100/100 loss 1.2346 " in last, last


@pytest.mark.parametrize("command", ["eval", "export"])
def test_a_sweep_where_a_run_goes_points_to_report(tmp_path, capsys, command):
  (tmp_path / "sweep.json").write_text("{}")
  args = [command, "--workdir", str(tmp_path)]
  assert cli.main(args + (["--out", str(tmp_path / "x")]
                          if command == "export" else [])) == 2
  err = capsys.readouterr().err
  assert f"ferjax {command}: error: {tmp_path} is a sweep (sweep.json)" in err
  assert f"'ferjax report {tmp_path}'" in err
