"""Dataset faults give one clear error and cache nothing; `~` paths expand.

Each test drives `ferjax data prepare` (its main, exit 2 on an expected
error) or the loader the trainer uses, and checks that no traceback reaches
the user.
"""

from pathlib import Path
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
import tensorflow_datasets as tfds

from helpers import (fer_rows, needs_mounts, read_only_mount, write_ck,
                     write_csv, write_folders)
from ferjax.commands import data as prepare_command
from ferjax.commands import eval as eval_command
from ferjax.commands import train as train_command
from ferjax.data import fer2013
from ferjax.data import loading
from ferjax.data import prepare


def _prepare(capsys, *argv: str) -> tuple[int, str, str]:
  code = prepare_command.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  assert "Traceback" not in out + err
  return code, out, err


def _fer_prepared(data_dir: Path) -> bool:
  return fer2013.Fer2013(data_dir=str(data_dir),
                         file_format="array_record").is_prepared()


def test_header_only_csv_is_refused_and_not_cached(tmp_path, capsys):
  manual, data = tmp_path / "manual", tmp_path / "data"
  manual.mkdir()
  write_csv(manual / "fer2013.csv", [])
  code, _, err = _prepare(capsys, "fer2013", "--manual-dir", manual,
                          "--data-dir", data)
  assert code == 2
  assert f"csv {manual / 'fer2013.csv'}: no Training examples" in err
  assert not _fer_prepared(data)
  write_csv(manual / "fer2013.csv", fer_rows())
  code, out, _ = _prepare(capsys, "fer2013", "--manual-dir", manual,
                          "--data-dir", data)
  assert code == 0 and "built in" in out
  assert _fer_prepared(data)


def test_data_without_a_train_split_is_refused(tmp_path, capsys):
  write_csv(tmp_path / "fer2013.csv", fer_rows(usages=("PublicTest",), n=3))
  code, _, err = _prepare(capsys, "fer2013", "--manual-dir", tmp_path,
                          "--data-dir", tmp_path / "data")
  assert code == 2
  assert "no Training examples (read 3 examples, 3 public_test)" in err
  assert not _fer_prepared(tmp_path / "data")


def _csv_with(manual: Path, row: bytes, *, tarball: bool) -> Path:
  """fer2013.csv (or fer2013.tar.gz holding it) with ``row`` after 2 rows."""
  manual.mkdir()
  path = write_csv(manual / "fer2013.csv", fer_rows(n=2))
  path.write_bytes(path.read_bytes() + row)
  if not tarball:
    return path
  with tarfile.open(manual / "fer2013.tar.gz", "w:gz") as archive:
    archive.add(path, arcname="fer2013/fer2013.csv")
  path.unlink()
  return Path(f"{manual / 'fer2013.tar.gz'}:fer2013/fer2013.csv")


@pytest.mark.parametrize("tarball", [False, True], ids=["csv", "tar"])
@pytest.mark.parametrize("row,message", [
    (b"0," + b"1 " * 70_000 + b",Training\r\n",
     " line 4: not a valid CSV row (field larger than field limit (131072))"),
    (b"0,\xff\xfe 1,Training\r\n", ": not UTF-8 text (byte 0xff)"),
], ids=["huge_field", "latin1"])
def test_a_csv_that_is_not_the_challenges_is_named(tmp_path, capsys, tarball,
                                                   row, message):
  name = _csv_with(tmp_path / "manual", row, tarball=tarball)
  code, _, err = _prepare(capsys, "fer2013", "--manual-dir",
                          tmp_path / "manual", "--data-dir", tmp_path / "data")
  assert code == 2
  assert err == (f"ferjax data prepare: error: {name}{message}; expected the "
                 "challenge's CSV\n")
  assert not _fer_prepared(tmp_path / "data")


def test_an_empty_build_from_an_earlier_version_is_named(tmp_path,
                                                         monkeypatch):
  """Earlier versions cached a header-only CSV as a dataset of no splits."""
  monkeypatch.setattr(fer2013.Fer2013, "_split_generators",
                      lambda self, dl_manager: {})
  write_csv(tmp_path / "fer2013.csv", [])
  builder = fer2013.Fer2013(data_dir=str(tmp_path / "data"),
                            file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path)))
  monkeypatch.undo()
  with pytest.raises(ValueError, match="without any split .* delete that "
                     "folder and prepare the dataset again"):
    loading.prepared_builder("fer2013", data_dir=str(tmp_path / "data"))


def _truncate(path: Path, fraction: float = 0.6) -> None:
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * fraction)])


def _fer_zip(path: Path, rows) -> None:
  write_folders(path.parent / "tree", rows)
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
    for f in sorted((path.parent / "tree").rglob("*.png")):
      archive.write(f, f.relative_to(path.parent / "tree"))
  shutil.rmtree(path.parent / "tree")


def _fer_tarball(path: Path, rows) -> None:
  write_csv(path.parent / "fer2013.csv", rows)
  with tarfile.open(path, "w:gz") as archive:
    archive.add(path.parent / "fer2013.csv", "fer2013/fer2013.csv")
  (path.parent / "fer2013.csv").unlink()


def _damage_member(path: Path) -> None:
  """Flips bytes in the middle of the first member's compressed data."""
  data = bytearray(path.read_bytes())
  for i in range(200, 260):
    data[i] ^= 0xFF
  path.write_bytes(bytes(data))


@pytest.mark.parametrize("dataset,name,make,damage", [
    ("fer2013", "archive.zip", _fer_zip, _truncate),
    ("fer2013", "archive.zip", _fer_zip, _damage_member),
    ("fer2013", "fer2013.tar.gz", _fer_tarball, _truncate),
    ("ck_plus", "CK+48.zip", None, _truncate),
])
def test_damaged_archive_is_named(tmp_path, capsys, dataset, name, make,
                                  damage):
  manual = tmp_path / "manual"
  manual.mkdir()
  archive = manual / name
  if make is not None:
    make(archive, fer_rows(n=60))
  else:
    write_ck(tmp_path / "ck")
    shutil.make_archive(str(archive.with_suffix("")), "zip", tmp_path / "ck")
  damage(archive)
  code, _, err = _prepare(capsys, dataset, "--manual-dir", manual,
                          "--data-dir", tmp_path / "data")
  assert code == 2
  assert f"{archive}: damaged or truncated archive (" in err
  assert "download it again" in err
  assert not list((tmp_path / "data").rglob("dataset_info.json"))


def test_manual_dir_or_data_dir_that_is_a_file(tmp_path, capsys):
  a_file = tmp_path / "a_file"
  a_file.write_text("not a folder")
  code, _, err = _prepare(capsys, "fer2013", "--manual-dir", a_file,
                          "--data-dir", tmp_path / "data")
  assert code == 2
  assert f"fer2013 manual dir {a_file} is a file; expected the folder" in err
  for data_dir in (a_file, a_file / "below"):
    code, _, err = _prepare(capsys, "synthetic_fer", "--data-dir", data_dir)
    assert code == 2
    assert f"error: {a_file}: is a file, expected a directory" in err


@needs_mounts
def test_prepared_dataset_on_a_read_only_mount_is_usable(synthetic_data_dir):
  proc = subprocess.run(read_only_mount(
      synthetic_data_dir, sys.executable, "-m", "ferjax.cli", "data",
      "prepare", "synthetic_fer", "--data-dir", synthetic_data_dir),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "already built" in proc.stdout
  assert "train          14,000" in proc.stdout
  assert "Traceback" not in proc.stderr


def test_tilde_in_paths_is_the_home_folder(synthetic_data_dir, tmp_path,
                                           monkeypatch, capsys):
  home, cwd = tmp_path / "home", tmp_path / "cwd"
  home.mkdir()
  cwd.mkdir()
  (home / "tfds").symlink_to(synthetic_data_dir)
  monkeypatch.setenv("HOME", str(home))
  monkeypatch.chdir(cwd)
  builder = loading.prepared_builder("synthetic_fer", data_dir="~/tfds")
  assert Path(builder.data_dir).is_relative_to(home / "tfds")
  code, out, _ = _prepare(capsys, "synthetic_fer", "--data-dir", "~/tfds")
  assert code == 0 and f"at {home / 'tfds'}" in out
  args, _ = train_command.build_parser().parse_known_args(
      ["--config", "~/c.py:runlocal", "--workdir", "~/run"])
  assert (args.config, args.workdir) == (f"{home}/c.py:runlocal",
                                         f"{home}/run")
  args, _ = eval_command.build_parser().parse_known_args(["--workdir=~/run"])
  assert args.workdir == [f"{home}/run"]  # Several make an ensemble.
  assert not (cwd / "~").exists()


def test_tilde_in_init_from_workdir(reference_run, tmp_path, monkeypatch):
  from ferjax import config as config_lib
  from ferjax.train import init_from
  from ferjax.train import setup as setup_lib
  from ferjax.train.parallel import Parallel
  reference, _ = reference_run
  monkeypatch.setenv("HOME", str(tmp_path))
  (tmp_path / "source").symlink_to(reference)
  config = config_lib.from_json((Path(reference) / "config.json").read_text())
  setup = setup_lib.training(config, Parallel.from_config(config.parallel))
  _, record = init_from.load(
      setup.init_state(), init_from=config_lib.from_json(
          '{"workdir": "~/source", "checkpoint": "latest"}'),
      class_names=setup.class_names, tx=setup.tx)
  assert record["workdir"] == str(tmp_path / "source")
  assert record["loaded"] > 0


@needs_mounts
@pytest.mark.parametrize("mount,reason", [
    ('mount -t tmpfs -o size=16k tmpfs "$0"', "no space left on the device"),
    ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0"',
     "read-only file system")])
def test_data_dir_on_a_full_or_read_only_disk(tmp_path, mount, reason):
  write_csv(tmp_path / "fer2013.csv", fer_rows(n=60))
  (tmp_path / "disk").mkdir()
  proc = subprocess.run(
      ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
       f'{mount} && exec "$@"', str(tmp_path / "disk"), sys.executable,
       "-m", "ferjax.cli", "data", "prepare", "fer2013", "--manual-dir",
       str(tmp_path), "--data-dir", str(tmp_path / "disk" / "data")],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert f"error: {tmp_path / 'disk'}" in proc.stderr
  assert f": {reason}" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_an_empty_slice_is_named_in_eval_and_training(synthetic_data_dir,
                                                      reference_run):
  from ferjax.evaluate import run_evaluation  # pylint: disable=g-import-not-at-top
  message = ("split 'test[:0]' of dataset 'synthetic_fer' selects no examples "
             "(of {}); give a non-empty slice")
  builder = loading.prepared_builder("synthetic_fer",
                                     data_dir=synthetic_data_dir)
  whole = builder.info.splits["test"].num_examples
  for split in ("test[:0]", "test[50%:50%]"):
    with pytest.raises(ValueError) as e:
      loading.read_split(builder, split)
    assert str(e.value) == message.replace("test[:0]", split).format(whole)
  with pytest.raises(ValueError) as e:
    run_evaluation.evaluate_run(str(reference_run[0]), split="test[:0]")
  assert str(e.value) == message.format(whole)
  assert len(loading.read_split(builder, "test[:1]")) == 1


def _wait_until_blocked_on(lock: Path, timeout: float = 60) -> None:
  """Returns once some thread waits for ``lock`` (Linux's /proc/locks lists
  a blocked flock as "N: -> FLOCK ... DEV:INODE ...")."""
  import time  # pylint: disable=g-import-not-at-top
  inode = f":{lock.stat().st_ino} "
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if any("->" in line and inode in line
           for line in Path("/proc/locks").read_text().splitlines()):
      return
    time.sleep(0.01)
  raise AssertionError(f"nothing waited for {lock}")


def test_a_prepare_that_waited_for_another_build_does_not_claim_it(tmp_path):
  import threading  # pylint: disable=g-import-not-at-top
  from ferjax import filelock  # pylint: disable=g-import-not-at-top
  manual, data = tmp_path / "manual", tmp_path / "data"
  manual.mkdir()
  write_csv(manual / "fer2013.csv", fer_rows())
  summaries = []
  # Another process's build: it holds the dataset lock, as loading does.
  with filelock.held(data / ".fer2013.lock"):
    waiting = threading.Thread(target=lambda: summaries.append(
        prepare.prepare("fer2013", manual_dir=str(manual),
                        data_dir=str(data))))
    waiting.start()
    _wait_until_blocked_on(data / ".fer2013.lock")
    fer2013.Fer2013(data_dir=str(data), file_format="array_record"
                    ).download_and_prepare(
                        download_config=tfds.download.DownloadConfig(
                            manual_dir=str(manual)))
  waiting.join(timeout=300)
  (summary,) = summaries
  assert not summary["built"] and summary["waited"]
  line = prepare.format_summary(summary).splitlines()[0]
  assert "built by another process; waited " in line, line
  assert "built in" not in line
  again = prepare.prepare("fer2013", data_dir=str(data))
  assert "(already built)" in prepare.format_summary(again).splitlines()[0]


def test_an_empty_streamed_train_slice_is_named(synthetic_data_dir):
  from ferjax.train import setup  # pylint: disable=g-import-not-at-top
  from helpers import tiny_config  # pylint: disable=g-import-not-at-top
  config = tiny_config(synthetic_data_dir)
  config.input.pipeline = "stream"
  config.input.train_split = "train[:0]"
  with pytest.raises(ValueError, match=r"split 'train\[:0\]' of dataset "
                     "'synthetic_fer' selects no examples"):
    setup.load_data(config)
