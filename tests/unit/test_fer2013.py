"""Tests of the FER2013 builder, its input forms, `clean` and `prepare`."""

import csv
import io
import shutil
import sys
import tarfile
import zipfile

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ferjax.commands import data as prepare_command
from ferjax.data import fer2013
from ferjax.data import prepare
from ferjax.labels import FER2013_CLASSES
from helpers import SHARED_FER2013, fer_rows, write_csv, write_folders


def _build(manual_dir, data_dir, config="original"):
  builder = fer2013.Fer2013(data_dir=str(data_dir), config=config,
                            file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _contents(builder):
  """{split: sorted [(image bytes, label)]}, independent of order and ids."""
  out = {}
  for split in builder.info.splits:
    source = builder.as_data_source(split)
    out[split] = sorted((ex["image"].tobytes(), int(ex["label"]))
                        for ex in source.__getitems__(range(len(source))))
  return out


def _expected(rows):
  split = {"Training": "train", "PublicTest": "public_test",
           "PrivateTest": "private_test"}
  out = {}
  for label, usage, image in rows:
    out.setdefault(split[usage], []).append((image.tobytes(), label))
  return {k: sorted(v) for k, v in out.items()}


def test_csv_build_has_the_rows_features_and_no_tensorflow(tmp_path):
  rows = fer_rows()
  write_csv(tmp_path / "fer2013.csv", rows)
  builder = _build(tmp_path, tmp_path / "data")
  features = builder.info.features
  assert features["image"].shape == (48, 48, 1)
  assert features["label"].names == list(FER2013_CLASSES)
  assert _contents(builder) == _expected(rows)
  example = builder.as_data_source("train")[0]
  assert example["image"].dtype == np.uint8
  row = int(example["source_id"].decode().split(":")[1]) - 2
  np.testing.assert_array_equal(example["image"][..., 0], rows[row][2])
  assert builder.info.metadata["source"].startswith("csv ")
  assert "tensorflow" not in sys.modules


def test_csv_and_png_folders_give_identical_datasets(tmp_path):
  rows = fer_rows(seed=1)
  csv_dir = tmp_path / "csv"
  csv_dir.mkdir()
  write_csv(csv_dir / "fer2013.csv", rows)
  from_csv = _contents(_build(csv_dir, tmp_path / "a"))
  from_folders = _contents(_build(write_folders(tmp_path / "folders", rows),
                                  tmp_path / "b"))
  assert from_csv == from_folders
  assert set(from_csv) == {"train", "public_test", "private_test"}


def _same(examples, rows):
  got = sorted((e.split, e.image.tobytes(), e.label) for e in examples)
  split = {"Training": "train", "PublicTest": "public_test",
           "PrivateTest": "private_test"}
  assert got == sorted((split[u], im.tobytes(), lab) for lab, u, im in rows)


def test_every_form_reads_the_same_examples(tmp_path):
  rows = fer_rows(seed=2)
  forms = {name: tmp_path / name
           for name in ("csv_down", "icml", "tar", "folders_down", "zip",
                        "zip_down")}
  for path in forms.values():
    path.mkdir()
  (forms["csv_down"] / "fer2013").mkdir()
  csv_path = write_csv(forms["csv_down"] / "fer2013" / "fer2013.csv", rows)
  write_csv(forms["icml"] / "icml_face_data.csv", rows,
             header=("emotion", " Usage", " pixels"))
  with tarfile.open(forms["tar"] / "fer2013.tar.gz", "w:gz") as archive:
    archive.add(csv_path, arcname="fer2013/fer2013.csv")
  folders = write_folders(tmp_path / "tree" / "archive", rows)
  shutil.copytree(folders, forms["folders_down"] / "archive")
  for name, prefix in (("zip", ""), ("zip_down", "fer2013/")):
    with zipfile.ZipFile(forms[name] / "archive.zip", "w") as archive:
      for f in sorted(folders.rglob("*.png")):
        archive.write(f, prefix + f.relative_to(folders).as_posix())
      archive.writestr("__MACOSX/train/._junk", b"junk")
  for name, path in forms.items():
    examples, source = fer2013.load_examples(path)
    assert source.split()[0] == {"csv_down": "csv", "icml": "csv",
                                 "tar": "tarball", "folders_down": "image",
                                 "zip": "zip", "zip_down": "zip"}[name]
    _same(examples, rows)


def test_folder_labels_follow_fer2013_order_not_folder_order(tmp_path):
  image = np.full((48, 48), 7, np.uint8)
  for name in ("neutral", "Angry"):
    (tmp_path / "train" / name).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / name / "Training_1.png"), image)
  examples, _ = fer2013.load_examples(tmp_path)
  labels = {e.source_id.split("/")[1]: e.label for e in examples}
  assert labels == {"neutral": 6, "Angry": 0}


def test_withheld_private_test_split_is_left_out(tmp_path):
  write_folders(tmp_path / "m", fer_rows(usages=("Training", "PublicTest")))
  builder = _build(tmp_path / "m", tmp_path / "data")
  assert set(builder.info.splits) == {"train", "public_test"}
  with pytest.raises(ValueError, match="private_test"):
    builder.as_data_source("private_test")


@pytest.mark.parametrize("edit,message", [
    (lambda r: r.__setitem__(1, " ".join(r[1].split()[:-1])),
     "line 3: 2303 pixels, expected 2304"),
    (lambda r: r.__setitem__(1, r[1].replace(" ", " 1.5 ", 1)[:-2]),
     "line 3: pixels are not integers"),
    (lambda r: r.__setitem__(1, "300" + r[1][r[1].index(" "):]),
     r"line 3: pixel values outside \[0, 255\]"),
    (lambda r: r.__setitem__(0, "7"), "line 3: emotion '7' is not an integer"),
    (lambda r: r.__setitem__(0, "happy"), "line 3: emotion 'happy'"),
    (lambda r: r.__setitem__(2, "Validation"), "line 3: Usage 'Validation'"),
    (lambda r: r.pop(), "line 3: 2 fields, expected 3"),
])
def test_malformed_csv_row_is_named_by_line(tmp_path, edit, message):
  path = write_csv(tmp_path / "fer2013.csv", fer_rows(n=4))
  lines = list(csv.reader(io.StringIO(path.read_text())))
  edit(lines[2])
  with open(path, "w", newline="") as f:
    csv.writer(f).writerows(lines)
  with pytest.raises(ValueError, match=f"fer2013.csv {message}"):
    fer2013.load_examples(tmp_path)


def test_csv_without_usage_column_is_an_error(tmp_path):
  (tmp_path / "fer2013.csv").write_text("emotion,pixels\n0,1 2\n")
  with pytest.raises(ValueError, match=r"lacks column\(s\) \['Usage'\]"):
    fer2013.load_examples(tmp_path)


@pytest.mark.parametrize("name,data,message", [
    ("train/fear/Training_1.png", b"not an image", "not a readable image"),
    ("train/fear/Training_1.png", cv2.imencode(
        ".png", np.zeros((40, 48), np.uint8))[1].tobytes(),
     "image is 48x40, expected 48x48"),
    # The header of a 30000x30000 PNG (a decompression bomb): not decoded.
    ("train/fear/Training_1.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
     + (30000).to_bytes(4, "big") * 2 + b"\x08\0\0\0\0",
     "image is 30000x30000, expected 48x48"),
    ("train/scared/Training_1.png", None, "class folder 'scared'"),
    ("train/fear/Validation_1.png", None, "does not start with one of"),
    ("train/fear/Training_1.txt", None, "not an image file"),
    ("test/PublicTest_1.png", None, r"expected \{train,test\}/<class>/<image>"),
])
def test_bad_image_file_is_named(tmp_path, name, data, message):
  good = cv2.imencode(".png", np.zeros((48, 48), np.uint8))[1].tobytes()
  (tmp_path / "train" / "happy").mkdir(parents=True)
  (tmp_path / "train" / "happy" / "Training_0.png").write_bytes(good)
  (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
  (tmp_path / name).write_bytes(good if data is None else data)
  with pytest.raises(ValueError, match=message) as info:
    fer2013.load_examples(tmp_path)
  assert str(tmp_path / name) in str(info.value)


def test_bad_file_inside_a_zip_is_named(tmp_path):
  with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
    archive.writestr("data/test/sad/PublicTest_9.jpg", b"broken")
  with pytest.raises(ValueError, match="archive.zip:data/test/sad/"
                     "PublicTest_9.jpg: not a readable image"):
    fer2013.load_examples(tmp_path)


def test_dir_without_any_form_says_what_was_looked_for(tmp_path):
  (tmp_path / "notes.txt").write_text("nothing here")
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
    archive.writestr("images/a.png", b"")
  with pytest.raises(FileNotFoundError) as info:
    fer2013.load_examples(tmp_path)
  for looked_for in (str(tmp_path), "fer2013.csv", "icml_face_data.csv",
                     "fer2013.tar.gz", "train/ or test/ class folders",
                     "*.zip"):
    assert looked_for in str(info.value)


def test_failed_build_leaves_no_dataset_that_looks_valid(tmp_path):
  (tmp_path / "m").mkdir()
  path = write_csv(tmp_path / "m" / "fer2013.csv", fer_rows(n=30))
  with open(path, "a") as f:
    f.write("3,1 2 3,Training\n")
  with pytest.raises(ValueError, match="line 32: 3 pixels"):
    _build(tmp_path / "m", tmp_path / "data")
  again = fer2013.Fer2013(data_dir=str(tmp_path / "data"),
                          file_format="array_record")
  assert not again.is_prepared()
  assert not list((tmp_path / "data").rglob("*.array_record*"))


def _clean_rows():
  """Rows with one blank image, a leaked test image and a label conflict."""
  rows = fer_rows(seed=3, n=14)
  rows[0] = (rows[0][0], "Training", np.full((48, 48), 128, np.uint8))
  near_blank = np.full((48, 48), 90, np.uint8)
  near_blank[0, :10] = 91  # std ~0.2 < 1 grey level.
  rows[1] = (rows[1][0], "PublicTest", near_blank)
  rows[2] = (3, "PrivateTest", rows[3][2])  # Also row 3 (Training, label 3).
  rows[4] = (5, "Training", rows[5][2])  # Row 5 is PrivateTest, label 5.
  rows[6] = (0, "Training", rows[9][2])  # Row 9 is Training, label 2.
  return rows


def test_clean_examples_removes_and_reports(tmp_path):
  write_csv(tmp_path / "fer2013.csv", _clean_rows())
  examples, _ = fer2013.load_examples(tmp_path)
  kept, report = fer2013.clean_examples(examples)
  assert report["removed_constant"] == ["fer2013.csv:2", "fer2013.csv:3"]
  assert report["removed_test_in_train"] == ["fer2013.csv:4", "fer2013.csv:7"]
  assert report["conflicting_label_groups"] == [
      ["fer2013.csv:11", "fer2013.csv:8"]]
  assert len(kept) == len(examples) - 4
  assert {e.source_id for e in kept}.isdisjoint(
      report["removed_constant"] + report["removed_test_in_train"])


def test_clean_config_build_stores_its_report(tmp_path):
  rows = _clean_rows()
  write_csv(tmp_path / "fer2013.csv", rows)
  built = _contents(_build(tmp_path, tmp_path / "data", config="clean"))
  # A fresh builder reads the report back from disk.
  builder = fer2013.Fer2013(data_dir=str(tmp_path / "data"), config="clean",
                            file_format="array_record")
  report = builder.info.metadata["clean"]
  assert report["removed_test_in_train"] == ["fer2013.csv:4", "fer2013.csv:7"]
  assert report["min_std"] == fer2013.CONSTANT_STD
  removed = {0, 1, 2, 5}  # Rows of fer2013.csv lines 2, 3, 4 and 7.
  assert built == _expected([r for i, r in enumerate(rows)
                             if i not in removed])


def test_prepare_main_prints_counts_and_clean_removals(tmp_path, capsys):
  write_csv(tmp_path / "fer2013.csv", _clean_rows())
  data_dir = tmp_path / "data"
  argv = ["fer2013", "--manual-dir", str(tmp_path), "--data-dir",
          str(data_dir), "--config", "clean"]
  assert prepare_command.main(argv) == 0
  out = capsys.readouterr().out
  assert "fer2013/clean 1.0.0" in out and "built in" in out
  assert "clean removed 2 constant images" in out
  assert "2 test images also in train" in out
  summary = prepare.prepare("fer2013", manual_dir=str(tmp_path),
                            data_dir=str(data_dir), config="clean")
  assert not summary["built"]
  assert summary["splits"] == {"train": 5, "public_test": 3,
                               "private_test": 2}
  counts = summary["class_counts"]["train"]
  assert list(counts) == list(FER2013_CLASSES)
  assert counts == {"angry": 1, "disgust": 0, "fear": 1, "happy": 1,
                    "sad": 0, "surprise": 2, "neutral": 0}


def test_prepare_main_reports_missing_data_and_returns_2(tmp_path, capsys):
  """As every other command: ``ferjax <cmd>: error: ...``, exit 2."""
  argv = ["fer2013", "--manual-dir", str(tmp_path / "nope"), "--data-dir",
          str(tmp_path / "data")]
  assert prepare_command.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("ferjax data prepare: error: ")
  assert "does not exist" in err
  assert prepare_command.main(argv[:1] + argv[3:]) == 2
  err = capsys.readouterr().err
  assert err.startswith("ferjax data prepare: error: ")
  assert "needs --manual-dir" in err
  assert prepare_command.main(argv + ["--config", "dirty"]) == 2
  assert "no config 'dirty'; its configs: original, clean" in (
      capsys.readouterr().err)


def _provenance_counts():
  """{usage: {class: count}} from the shared copy's PROVENANCE.txt table."""
  lines = (SHARED_FER2013 / "PROVENANCE.txt").read_text().splitlines()
  header = next(line.split() for line in lines
                if line.split()[:1] == ["split"])
  counts = {}
  for line in lines:
    words = line.split()
    if words[:1] in (["Training"], ["PublicTest"]) and len(words) == 8:
      counts[words[0]] = dict(zip(header[1:], map(int, words[1:])))
  return counts


needs_shared = pytest.mark.skipif(not SHARED_FER2013.is_dir(),
                                  reason=f"{SHARED_FER2013} absent")


@needs_shared
def test_shared_copy_files_read_like_fixtures(tmp_path):
  for split in ("train", "test"):
    for folder in sorted((SHARED_FER2013 / split).iterdir()):
      (tmp_path / split / folder.name).mkdir(parents=True)
      for f in sorted(folder.iterdir())[:2]:
        shutil.copy(f, tmp_path / split / folder.name)
  builder = _build(tmp_path, tmp_path / "data")
  assert {s: info.num_examples for s, info in builder.info.splits.items()
          } == {"train": 14, "public_test": 14}
  for ex in builder.as_data_source("public_test"):
    name = ex["source_id"].decode()
    assert name.split("/")[1] == FER2013_CLASSES[ex["label"]]
    original = cv2.imread(str(SHARED_FER2013 / name), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(ex["image"][..., 0], original)


@needs_shared
@pytest.mark.slow
def test_shared_copy_builds_with_provenance_counts(tmp_path):
  summary = prepare.prepare("fer2013", manual_dir=str(SHARED_FER2013),
                            data_dir=str(tmp_path))
  expected = _provenance_counts()
  assert summary["splits"] == {
      "train": sum(expected["Training"].values()),
      "public_test": sum(expected["PublicTest"].values())}
  assert summary["class_counts"]["train"] == expected["Training"]
  assert summary["class_counts"]["public_test"] == expected["PublicTest"]
  assert "tensorflow" not in sys.modules
