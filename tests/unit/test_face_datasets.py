"""Tests of the RAF-DB, AffectNet, FER+ and JAFFE builders on fixtures
written here in each dataset's distributed layout (no real data)."""

import csv

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from ferjax.data import affectnet, fer_plus, jaffe, prepare, raf_db
from ferjax.labels import FER2013_CLASSES, FER2013_CONTEMPT_CLASSES
from helpers import write_csv


def _build(cls, manual_dir, data_dir, config=None):
  kwargs = {"config": config} if config else {}
  builder = cls(data_dir=str(data_dir), file_format="array_record", **kwargs)
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _records(builder, split):
  source = builder.as_data_source(split)
  return {r["source_id"].decode() if isinstance(r["source_id"], bytes)
          else r["source_id"]: r for r in source.__getitems__(
              range(len(source)))}


def _name(builder, record):
  return builder.info.features["label"].names[int(record["label"])]


# RAF-DB's numbering: 1 Surprise 2 Fear 3 Disgust 4 Happiness 5 Sadness
# 6 Anger 7 Neutral, written here independently of the builder's table.
RAF_NAMES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad",
             6: "angry", 7: "neutral"}


def _write_raf(root):
  """RAF-DB basic: aligned 100x100 colour faces, originals with boxes, the
  partition file; image brightness says the label."""
  lines, expected = [], {}
  for i in range(14):
    split = "train" if i < 10 else "test"
    number = i % 7 + 1
    name = f"{split}_{i + 1:05d}.jpg"
    lines.append(f"{name} {number}")
    level = 20 + 30 * number
    aligned = np.full((100, 100, 3), level, np.uint8)
    (root / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / "Image" / "aligned" /
                           f"{name[:-4]}_aligned.jpg"), aligned)
    original = np.zeros((160, 200, 3), np.uint8)
    original[40:120, 60:140] = level  # The face: an 80x80 box.
    (root / "Image" / "original").mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / "Image" / "original" / name), original)
    (root / "Annotation" / "boundingbox").mkdir(parents=True, exist_ok=True)
    (root / "Annotation" / "boundingbox" /
     f"{name[:-4]}_boundingbox.txt").write_text("60.0 40.0 140.0 120.0\n")
    expected[name] = (split, RAF_NAMES[number], level)
  (root / "EmoLabel").mkdir(parents=True)
  (root / "EmoLabel" / "list_patition_label.txt").write_text(
      "\n".join(lines) + "\n")
  return expected


@pytest.mark.parametrize("layout", ["aligned", "original"])
def test_raf_db_maps_labels_by_name_and_crops_the_face(tmp_path, layout):
  expected = _write_raf(tmp_path / "m" / "RAF-DB" / "basic")
  builder = _build(raf_db.RafDb, tmp_path / "m", tmp_path / "d", layout)
  assert builder.info.features["label"].names == list(FER2013_CLASSES)
  seen = {}
  for split in ("train", "test"):
    for key, record in _records(builder, split).items():
      want_split, name, level = expected[key]
      assert split == want_split and _name(builder, record) == name
      image = record["image"]
      assert image.shape == (48, 48, 1)
      # The whole crop is the face (the box cuts off the dark border).
      assert abs(float(image.mean()) - level) < 3, key
      seen[key] = name
  assert seen.keys() == expected.keys()


def test_raf_db_missing_image_is_named_and_nothing_is_cached(tmp_path):
  root = tmp_path / "m"
  _write_raf(root)
  (root / "Image" / "aligned" / "test_00012_aligned.jpg").unlink()
  with pytest.raises(FileNotFoundError, match="test_00012_aligned.jpg"):
    _build(raf_db.RafDb, root, tmp_path / "d")
  assert not raf_db.RafDb(data_dir=str(tmp_path / "d"),
                          file_format="array_record").is_prepared()


# AffectNet's numbering: 0 Neutral 1 Happy 2 Sad 3 Surprise 4 Fear
# 5 Disgust 6 Anger 7 Contempt; 8 None 9 Uncertain 10 Non-Face skipped.
AFFECTNET_NAMES = ("neutral", "happy", "sad", "surprise", "fear", "disgust",
                   "angry", "contempt")


def test_affectnet_crops_by_box_skips_and_counts_non_expressions(tmp_path):
  root = tmp_path / "m" / "AffectNet"
  lists = root / "Manually_Annotated_file_lists"
  lists.mkdir(parents=True)
  rows = {"train": [], "validation": []}
  expected = {}
  for i, label in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 1, 7]):
    split = "train" if i < 12 else "validation"
    path = f"{100 + i % 3}/img{i}.jpg"
    image = np.full((90, 120, 3), 10, np.uint8)
    x, y, w, h = 20 + i, 10, 50, 60
    level = 60 + 12 * i
    image[y:y + h, x:x + w] = level
    (root / "Manually_Annotated_Images" / path).parent.mkdir(
        parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / "Manually_Annotated_Images" / path), image)
    rows[split].append([path, x, y, w, h, "1;2;3", label, "0.1", "-0.2"])
    if label < 8:
      expected[path] = (split, AFFECTNET_NAMES[label], level)
  with open(lists / "training.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(affectnet.COLUMNS)
    writer.writerows(rows["train"])
  with open(lists / "validation.csv", "w", newline="") as f:
    csv.writer(f).writerows(rows["validation"])  # No header, as shipped.
  summary = prepare.prepare("affectnet", manual_dir=str(tmp_path / "m"),
                            data_dir=str(tmp_path / "d"))
  assert "skipped in train: 2 Non-Face, 1 None, 1 Uncertain" in (
      prepare.format_summary(summary))
  builder = affectnet.AffectNet(data_dir=str(tmp_path / "d"),
                                file_format="array_record")
  assert builder.info.features["label"].names == list(
      FER2013_CONTEMPT_CLASSES)
  got = {}
  for split in ("train", "validation"):
    for key, record in _records(builder, split).items():
      want_split, name, level = expected[key]
      assert (split, _name(builder, record)) == (want_split, name)
      # The box is taller than wide: the square around it takes in a
      # little dark border on the sides, the middle is the face.
      assert abs(float(record["image"][8:40, 12:36].mean()) - level) < 3
      got[key] = name
  assert got.keys() == expected.keys()
  assert builder.info.metadata["skipped"] == {
      "train": {"None": 1, "Uncertain": 1, "Non-Face": 2}, "validation": {}}


def _fer_plus_fixture(root):
  """fer2013.csv and fer2013new.csv, row for row: 9 rows whose votes hit
  each rule of the FER+ paper's label modes."""
  rng = np.random.default_rng(3)
  #            usage         name         neu hap sur sad ang dis fea con unk NF
  rows = [("Training", "fer0.png", [0, 8, 0, 0, 0, 0, 0, 0, 2, 0]),
          ("Training", "fer1.png", [4, 3, 0, 3, 0, 0, 0, 0, 0, 0]),
          ("Training", "fer2.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
          ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),
          ("Training", "fer4.png", [1, 0, 0, 0, 0, 0, 0, 9, 0, 0]),
          ("Training", "fer5.png", [0, 0, 0, 0, 5, 1, 0, 0, 3, 1]),
          ("PublicTest", "fer6.png", [4, 3, 0, 3, 0, 0, 0, 0, 0, 0]),
          ("PublicTest", "fer7.png", [0, 0, 7, 0, 0, 0, 3, 0, 0, 0]),
          ("PrivateTest", "fer8.png", [0, 0, 0, 6, 0, 0, 0, 0, 0, 4])]
  images = [rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in rows]
  root.mkdir(parents=True)
  write_csv(root / "fer2013.csv", [(i % 7, usage, image) for i, (
      (usage, _, _), image) in enumerate(zip(rows, images))])
  with open(root / "fer2013new.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["Usage", "Image name", *fer_plus.VOTE_COLUMNS])
    writer.writerows([usage, name, *votes] for usage, name, votes in rows)
  return {name: image for (_, name, _), image in zip(rows, images) if name}


def _dist(**shares):
  d = np.zeros(8)
  for name, share in shares.items():
    d[FER2013_CONTEMPT_CLASSES.index(name)] = share
  return d


# By hand from the paper's rules: single votes are outliers; majority needs
# more than half; probability/crossentropy take the top emotions (at most 3)
# until 75% of the votes and need more than half; unknown/NF are dropped.
FER_PLUS_TRAIN = {
    "majority": {"fer0.png": _dist(happy=1.0), "fer4.png": _dist(contempt=1.0),
                 "fer5.png": _dist(angry=1.0)},
    "probability": {"fer0.png": _dist(happy=1.0),
                    "fer1.png": _dist(neutral=.4, happy=.3, sad=.3),
                    "fer4.png": _dist(contempt=1.0),
                    "fer5.png": _dist(angry=1.0)},
}
FER_PLUS_TRAIN["crossentropy"] = FER_PLUS_TRAIN["probability"]
# Test splits are labelled by majority in every mode, as the paper's script.
FER_PLUS_TEST = {"public_test": {"fer7.png": _dist(surprise=1.0)},
                 "private_test": {"fer8.png": _dist(sad=1.0)}}


@pytest.mark.parametrize("mode", fer_plus.MODES)
def test_fer_plus_label_modes_follow_the_paper(tmp_path, mode):
  images = _fer_plus_fixture(tmp_path / "m")
  builder = _build(fer_plus.FerPlus, tmp_path / "m", tmp_path / "d", mode)
  for split, want in {"train": FER_PLUS_TRAIN[mode], **FER_PLUS_TEST}.items():
    records = _records(builder, split)
    assert sorted(records) == sorted(want), split
    for key, record in records.items():
      np.testing.assert_allclose(record["distribution"], want[key], atol=1e-6)
      assert int(record["label"]) == int(np.argmax(want[key]))
      np.testing.assert_array_equal(record["image"][..., 0], images[key])
  dropped = builder.info.metadata["dropped"]
  assert dropped["train"]["no image name"] == 1
  assert dropped["public_test"] == {"unknown": 1}


def test_fer_plus_refuses_votes_that_do_not_line_up_with_the_rows(tmp_path):
  _fer_plus_fixture(tmp_path / "m")
  votes = tmp_path / "m" / "fer2013new.csv"
  votes.write_text("\n".join(votes.read_text().splitlines()[:-1]) + "\n")
  with pytest.raises(ValueError, match="8 rows, but csv .* has 9"):
    _build(fer_plus.FerPlus, tmp_path / "m", tmp_path / "d", "majority")


JAFFE_CODES = {"AN": "angry", "DI": "disgust", "FE": "fear", "HA": "happy",
               "NE": "neutral", "SA": "sad", "SU": "surprise"}


def test_jaffe_labels_subjects_and_palette_images(tmp_path):
  folder = tmp_path / "m" / "jaffedbase"
  folder.mkdir(parents=True)
  (folder / "README").write_text("JAFFE")
  expected = {}
  for i, (code, name) in enumerate(JAFFE_CODES.items()):
    for subject in ("KA", "YM"):
      level = 20 + 25 * i + (5 if subject == "YM" else 0)
      file_name = f"{subject}.{code}{1 + i % 3}.{40 + i}.tiff"
      pixels = np.full((256, 256), level, np.uint8)
      if subject == "YM":  # A palette image whose indices are not greys.
        image = Image.new("P", (256, 256))
        image.putpalette([255 - v for v in range(256) for _ in range(3)])
        image.putdata([255 - level] * (256 * 256))
      else:
        image = Image.fromarray(pixels, "L")
      image.save(folder / file_name, "TIFF")
      expected[file_name] = (name, subject, level)
  builder = _build(jaffe.Jaffe, tmp_path / "m", tmp_path / "d")
  records = _records(builder, "train")
  assert sorted(records) == sorted(expected)
  subjects = set()
  for key, record in records.items():
    name, subject, level = expected[key]
    assert _name(builder, record) == name
    assert int(record["image"].min()) == int(record["image"].max()) == level
    subjects.add((subject, int(record["subject"])))
  assert len(subjects) == 2 and len({s for _, s in subjects}) == 2


def test_jaffe_bad_file_name_is_named(tmp_path):
  (tmp_path / "m").mkdir()
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(
      tmp_path / "m" / "KA.XX1.39.tiff")
  with pytest.raises(ValueError, match="KA.XX1.39.tiff: expected a name"):
    _build(jaffe.Jaffe, tmp_path / "m", tmp_path / "d")
