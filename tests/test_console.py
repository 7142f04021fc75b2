"""What a user sees: `--help` lists every command, the bar and logs share a line."""

import contextlib
import io
import logging
import subprocess
import sys

import pytest

from ferjax.commands import sweep as sweep_command
from ferjax.commands import train as train_command
from ferjax.train.progress import Progress

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
  assert "Traceback" not in out.stderr


@pytest.mark.parametrize("group,sub", [("data", "prepare"),
                                       ("convert", "torchvision")])
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
