"""Tests of the CK+48 builder and subject-independent folds over it."""

from pathlib import Path
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ferjax.data import ck_plus
from ferjax.data import prepare
from ferjax.data import splits
from ferjax.labels import CKPLUS_CLASSES
from helpers import write_ck


def _build(manual_dir, data_dir):
  builder = ck_plus.CkPlus(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _all(builder):
  source = builder.as_data_source("train")
  return source.__getitems__(range(len(source)))


def test_build_keeps_labels_subjects_and_pixels(tmp_path):
  expected = write_ck(tmp_path / "m" / "CK+48")
  (tmp_path / "m" / "README.txt").write_text("CK+48 crops")
  builder = _build(tmp_path / "m", tmp_path / "data")
  assert list(builder.info.splits) == ["train"]
  assert builder.info.features["label"].names == list(CKPLUS_CLASSES)
  examples = _all(builder)
  assert len(examples) == len(expected)
  for ex in examples:
    label, image = expected[(int(ex["subject"]), int(ex["sequence"]),
                             int(ex["frame"]))]
    assert int(ex["label"]) == label
    assert ex["image"].shape == (48, 48, 1) and ex["image"].dtype == np.uint8
    np.testing.assert_array_equal(ex["image"][..., 0], image)


def test_subject_folds_over_the_built_dataset_never_share_a_subject(tmp_path):
  write_ck(tmp_path / "m", n_subjects=12, seed=1)
  examples = _all(_build(tmp_path / "m", tmp_path / "data"))
  subjects = np.array([int(ex["subject"]) for ex in examples])
  labels = np.array([int(ex["label"]) for ex in examples])
  for stratify in (None, labels):
    folds = splits.subject_kfold(subjects, 5, seed=0, labels=stratify)
    for train, test in folds:
      assert set(subjects[train]).isdisjoint(subjects[test])
    tested = np.sort(np.concatenate([test for _, test in folds]))
    np.testing.assert_array_equal(tested, np.arange(len(examples)))


def test_zip_one_folder_down_reads_the_same_examples(tmp_path):
  write_ck(tmp_path / "tree", seed=2)
  (tmp_path / "m").mkdir()
  with zipfile.ZipFile(tmp_path / "m" / "ckplus.zip", "w") as archive:
    for f in sorted((tmp_path / "tree").rglob("*.png")):
      archive.write(f, "CK+48/" + f.relative_to(tmp_path / "tree").as_posix())

  def contents(manual_dir):
    return sorted((key, ex["label"], ex["subject"], ex["image"].tobytes())
                  for key, ex in ck_plus.read_examples(manual_dir))

  from_zip = contents(tmp_path / "m")
  assert from_zip and from_zip == contents(tmp_path / "tree")


def _one_file(root, name, data=None):
  (root / name).parent.mkdir(parents=True, exist_ok=True)
  image = np.zeros((48, 48), np.uint8)
  (root / name).write_bytes(
      data if data is not None else cv2.imencode(".png", image)[1].tobytes())


@pytest.mark.parametrize("name,data,message", [
    ("happy/S010_002.png", None, "expected a file named S<subject>"),
    ("happy/s010_002_00000001.png", None, "expected a file named S<subject>"),
    ("happy/S010_002_00000001.gif", None, "expected a file named S<subject>"),
    ("happy/S010_002_00000001.png", b"garbage", "not a readable image"),
    ("happy/S010_002_00000001.png", b"", "not a readable image"),
    ("happy/S010_002_00000001.png",
     cv2.imencode(".png", np.zeros((64, 64), np.uint8))[1].tobytes(),
     "image is 64x64, expected 48x48"),
    ("neutral/S010_002_00000001.png", None, "class folder 'neutral'"),
])
def test_bad_file_is_an_error_naming_it(tmp_path, name, data, message):
  _one_file(tmp_path, "anger/S011_001_00000001.png")
  _one_file(tmp_path, name, data)
  with pytest.raises(ValueError, match=message) as info:
    list(ck_plus.read_examples(tmp_path))
  assert str(tmp_path / name) in str(info.value)


def test_builder_reports_the_bad_file_and_writes_nothing(tmp_path):
  write_ck(tmp_path / "m")
  _one_file(tmp_path / "m", "sadness/S5_1.png")
  with pytest.raises(ValueError, match="sadness/S5_1.png"):
    _build(tmp_path / "m", tmp_path / "data")
  assert not ck_plus.CkPlus(data_dir=str(tmp_path / "data")).is_prepared()
  assert not list((tmp_path / "data").rglob("*.array_record*"))


def test_dir_without_class_folders_says_what_was_looked_for(tmp_path):
  _one_file(tmp_path, "faces/S010_002_00000001.png")
  with pytest.raises(FileNotFoundError) as info:
    list(ck_plus.read_examples(tmp_path))
  for looked_for in (str(tmp_path), "anger, contempt", "one folder down",
                     "*.zip"):
    assert looked_for in str(info.value)


def test_prepare_counts_classes(tmp_path):
  expected = write_ck(tmp_path / "m", seed=3)
  summary = prepare.prepare("ck_plus", manual_dir=str(tmp_path / "m"),
                            data_dir=str(tmp_path / "data"))
  assert summary["config"] is None
  assert summary["splits"] == {"train": len(expected)}
  labels = [label for label, _ in expected.values()]
  assert summary["class_counts"]["train"] == {
      name: labels.count(i) for i, name in enumerate(CKPLUS_CLASSES)}
  assert Path(summary["data_dir"]).is_dir()


def test_prepare_cli_output_is_clean_in_a_log_file(tmp_path):
  """Off a terminal: no TFDS bars (carriage returns), no "Unknown size"."""
  write_ck(tmp_path / "m", n_subjects=3, seed=4)
  out = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", "data", "prepare", "ck_plus",
       "--manual-dir", str(tmp_path / "m"), "--data-dir",
       str(tmp_path / "data")], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  both = out.stdout + out.stderr
  assert "\r" not in both and "Unknown size" not in both
  assert "building dataset ck_plus (first use)" in out.stderr


@pytest.mark.parametrize("command", ["train", "crossval"])
def test_missing_manual_files_give_one_paragraph(tmp_path, command):
  repo = Path(__file__).resolve().parents[2]
  out = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", command, "--config",
       str(repo / "experiments" / "ckplus_lenet.py"), "--workdir",
       str(tmp_path / "run"), "--data-dir", str(tmp_path / "data")],
      capture_output=True, text=True, timeout=300)
  assert out.returncode == 2
  assert "Traceback" not in out.stderr
  assert "dataset ck_plus is not prepared" in out.stderr
  assert (f"ferjax data prepare ck_plus --manual-dir DIR --data-dir "
          f"{tmp_path / 'data'}") in out.stderr
