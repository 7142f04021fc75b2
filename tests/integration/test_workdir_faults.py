"""A workdir that is a file, read-only or on a full disk: one clear error;
a failed start leaves nothing behind.

The read-only and full-disk cases run `ferjax train` in a private mount
namespace (a read-only bind mount, a 64 KiB tmpfs); they are skipped where
user namespaces are not available.
"""

import subprocess
import sys

import pytest

from ferjax import cli
from helpers import QUICKSTART, REPO, needs_mounts, tiny_overrides


def _train_args(workdir, data_dir) -> list[str]:
  return ["train", "--config", QUICKSTART, "--workdir", str(workdir)] + [
      f"--config.{o}" for o in tiny_overrides(data_dir, num_epochs=1)]


def test_workdir_that_is_a_file(synthetic_data_dir, tmp_path, capsys):
  a_file = tmp_path / "run"
  a_file.write_text("not a run")
  for workdir in (a_file, a_file / "below"):
    assert cli.main(_train_args(workdir, synthetic_data_dir)) == 2
    err = capsys.readouterr().err
    assert f"ferjax train: error: {a_file}: is a file, expected a " \
           "directory" in err
    assert "Traceback" not in err
  assert a_file.read_text() == "not a run"


def _in_namespace(setup: str, mountpoint, command: list[str]):
  return subprocess.run(
      ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
       f'{setup} && exec "$@"', str(mountpoint), *command],
      cwd=REPO, capture_output=True, text=True, timeout=600)


@needs_mounts
def test_read_only_workdir(synthetic_data_dir, tmp_path):
  (tmp_path / "ro").mkdir()
  proc = _in_namespace(
      'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0"',
      tmp_path / "ro", [sys.executable, "-m", "ferjax.cli", *_train_args(
          tmp_path / "ro" / "run", synthetic_data_dir)])
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.splitlines()[-1] == (
      f"ferjax train: error: {tmp_path / 'ro' / 'run'}: read-only file "
      "system")
  assert "Traceback" not in proc.stderr


@needs_mounts
def test_full_disk(synthetic_data_dir, tmp_path):
  (tmp_path / "small").mkdir()
  proc = _in_namespace(
      'mount -t tmpfs -o size=64k tmpfs "$0"', tmp_path / "small",
      [sys.executable, "-m", "ferjax.cli", *_train_args(
          tmp_path / "small" / "run", synthetic_data_dir)])
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines()
            if line.startswith("ferjax train: error: ")]
  assert len(errors) == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  last = errors[0]
  assert str(tmp_path / "small" / "run") in last
  assert "No space left on device" in last or "no space left" in last


@pytest.mark.parametrize("command,experiment", [
    ("train", "fer2013_lenet.py"), ("crossval", "ckplus_lenet.py")])
@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_start_leaves_nothing_behind(tmp_path, capsys, command,
                                              experiment, existed):
  """A missing dataset: no .lock, no empty fold_0/, no workdir it made."""
  workdir = tmp_path / "run"
  if existed:
    workdir.mkdir()
  code = cli.main([
      command, "--config",
      str(REPO / "experiments" / experiment),
      "--workdir", str(workdir),
      f"--config.input.manual_dir={tmp_path / 'missing'}",
      f"--config.input.data_dir={tmp_path / 'tfds'}"])
  assert code == 2
  assert "missing" in capsys.readouterr().err
  assert (list(workdir.iterdir()) == []) if existed else not workdir.exists()
