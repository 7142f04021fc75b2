"""Tests of the class-folder dataset: class mapping, faces cropped as
predict crops them, faces not found listed by file."""

import json

import cv2
import numpy as np
import pytest

from ferjax.data import class_folders, loading, prepare
from ferjax.data.synthetic_fer import render_face
from ferjax.labels import FER2013_CLASSES
from ferjax.recognition.align import align_faces
from ferjax.recognition.image_folder import ImageFolder
from ferjax.recognition.pipeline import as_rgb, get_detector
from ferjax.recognition.predict import load_image
from helpers import PHOTOS, ferjax_cli


def _face_photo(seed: int) -> np.ndarray:
  """A generated face, enlarged on a plain colour background: MTCNN finds
  about half of these."""
  face = render_face(np.random.default_rng(seed), seed % 7)
  big = cv2.resize(face, (160, 160), interpolation=cv2.INTER_CUBIC)
  canvas = np.full((240, 260), int(np.median(face[:4])), np.uint8)
  canvas[40:200, 50:210] = big
  return cv2.merge([canvas, canvas, (canvas * 0.9).astype(np.uint8)])


def _write_tree(root):
  """Folders named by synonyms, one mapped by classes.json, one left out,
  and a blank image where no face can be found."""
  folders = {"Anger": "angry", "happiness": "happy", "glad": "happy",
             "contempt": None, "Sad": "sad"}
  expected = {}
  seed = 0
  for folder, name in folders.items():
    (root / folder).mkdir(parents=True)
    for _ in range(2):
      path = root / folder / f"img{seed}.png"
      assert cv2.imwrite(str(path), _face_photo(seed))
      if name:
        expected[f"{folder}/img{seed}.png"] = name
      seed += 1
  assert cv2.imwrite(str(root / "Sad" / "blank.jpg"),
                     np.full((120, 120, 3), 128, np.uint8))
  expected["Sad/blank.jpg"] = "sad"
  (root / class_folders.MAPPING_FILE).write_text(
      json.dumps({"glad": "happy", "contempt": None}))
  return expected


@pytest.mark.parametrize("detector", [
    "haar", pytest.param("auto", marks=pytest.mark.slow)])  # MTCNN: ~20 s.
def test_faces_are_cropped_as_predict_crops_them_and_misses_listed(
    tmp_path, detector):
  expected = _write_tree(tmp_path / "faces")
  summary = prepare.prepare("image_folder", manual_dir=str(tmp_path / "faces"),
                            data_dir=str(tmp_path / "d"), config=detector)
  builder = ImageFolder(data_dir=str(tmp_path / "d"),
                        file_format="array_record", config=detector)
  metadata = builder.info.metadata
  source = builder.as_data_source("train")
  records = source.__getitems__(range(len(source)))
  stored = {r["source_id"].decode(): r for r in records}
  # Every image is stored or listed as without a face, never both.
  assert sorted([*stored, *metadata["no_face"]]) == sorted(expected)
  assert "Sad/blank.jpg" in metadata["no_face"] and len(stored) >= 3
  assert metadata["left_out"] == {"contempt": 2}
  assert metadata["classes"]["Anger"] == "angry"
  assert metadata["detector"] == detector
  for path, record in stored.items():
    assert FER2013_CLASSES[int(record["label"])] == expected[path]
    # What predict hands its classifier for this photo's face.
    image = as_rgb(load_image(tmp_path / "faces" / path))
    faces = get_detector(detector).detect(image)
    crops = align_faces(image, faces, (48, 48, 1), margin=0.1)
    assert any(np.array_equal(record["image"], c) for c in crops), path
  assert summary["splits"] == {"train": len(stored)}
  printed = prepare.format_summary(summary)
  assert "no face found (not stored)" in printed and "Sad/blank.jpg" in printed
  assert "left out by classes.json: contempt/ (2 images)" in printed


def test_unknown_class_folder_is_named_with_the_fix(tmp_path):
  (tmp_path / "f" / "joy").mkdir(parents=True)
  with pytest.raises(ValueError, match=r"'joy' is none of .*classes.json"):
    class_folders.list_images(tmp_path / "f")


def test_aligned_config_keeps_already_cropped_faces_pixel_for_pixel(tmp_path):
  rng = np.random.default_rng(0)
  root = tmp_path / "f"
  images = {}
  for split in ("train", "test"):
    for name in ("happy", "neutral"):
      (root / split / name).mkdir(parents=True)
      image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
      assert cv2.imwrite(str(root / split / name / "a.png"), image)
      images[f"{split}/{name}/a.png"] = image
  builder = loading.prepared_builder("image_folder", data_dir=str(
      tmp_path / "d"), manual_dir=str(root), builder_config="aligned")
  assert set(builder.info.splits) == {"train", "test"}
  for split in ("train", "test"):
    source = builder.as_data_source(split)
    for record in source.__getitems__(range(len(source))):
      path = record["source_id"].decode()
      np.testing.assert_array_equal(record["image"][..., 0], images[path])
      assert FER2013_CLASSES[int(record["label"])] == path.split("/")[1]
  # The build remembers its folder: another one is refused, not mixed up.
  (tmp_path / "other" / "sad").mkdir(parents=True)
  with pytest.raises(ValueError, match="holds the image folder"):
    loading.prepared_builder("image_folder", data_dir=str(tmp_path / "d"),
                             manual_dir=str(tmp_path / "other"),
                             builder_config="aligned")


CONFIG = "experiments/image_folder_lenet.py:runlocal"


def _train_and_cross_evaluate(tmp_path, faces, detector, extra_dataset):
  """``ferjax train`` on the class folders ``faces`` (built with
  ``detector``), then the run and the bundled model, alone and as an
  ensemble, on the folders and on ``extra_dataset`` (args)."""
  workdir = tmp_path / "run"
  proc = ferjax_cli("train", "--config", CONFIG, "--workdir", str(workdir),
                    "--manual-dir", str(faces),
                    f"--config.input.data_dir={tmp_path / 'd'}",
                    f"--config.input.builder_config={detector}")
  assert proc.returncode == 0, proc.stderr
  manifest = json.loads((workdir / "manifest.json").read_text())
  assert manifest["dataset"]["name"] == "image_folder"
  proc = ferjax_cli("eval", "--workdir", str(workdir), "--pretrained",
                    "--json", "--dataset", f"image_folder/{detector}",
                    "--data-dir", str(tmp_path / "d"), "--manual-dir", "",
                    *extra_dataset)
  assert proc.returncode == 0, proc.stderr
  return json.loads(proc.stdout)


@pytest.mark.slow  # Trains (about 30 s with its two processes).
def test_own_folder_end_to_end_on_generated_faces(tmp_path):
  for seed in range(21):
    folder = tmp_path / "faces" / FER2013_CLASSES[seed % 7]
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / f"{seed}.jpg"), _face_photo(seed))
  crops = tmp_path / "crops"  # The same faces, already cropped, as 48x48.
  for seed in range(7):
    folder = crops / "test" / FER2013_CLASSES[seed % 7]
    folder.mkdir(parents=True)
    assert cv2.imwrite(str(folder / f"{seed}.png"),
                       render_face(np.random.default_rng(seed), seed % 7))
  result = _train_and_cross_evaluate(
      tmp_path, tmp_path / "faces", "haar",
      ["--dataset", "image_folder/aligned", "--data-dir",
       str(tmp_path / "d2"), "--manual-dir", str(crops)])
  assert result["models"][-1] == "ensemble" and len(result["models"]) == 3
  own, cropped = result["evaluations"]
  assert (own["split"], cropped["split"]) == ("train", "test")
  stored = 21 - len(ImageFolder(
      data_dir=str(tmp_path / "d"), file_format="array_record",
      config="haar").info.metadata["no_face"])
  for model in result["models"]:
    assert own["results"][model]["num_examples"] == stored
    assert cropped["results"][model]["num_examples"] == 7


@pytest.mark.slow  # MTCNN on real photos, and a training run.
@pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"{PHOTOS} is absent")
def test_own_folder_end_to_end_on_the_shared_photos(tmp_path):
  # Class folders of links (in tmp, never in the repository); the classes
  # are those PROVENANCE.txt gives by eye, "surprised" by its synonym.
  classes = {"angry.jpg": "angry", "happy-baby.jpeg": "happy",
             "astronaut.png": "happy", "neutral.jpeg": "neutral",
             "group.jpeg": "neutral", "sad-baby.jpeg": "sad",
             "surprised.jpeg": "surprised"}
  for name, folder in classes.items():
    (tmp_path / "photos" / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "photos" / folder / name).symlink_to(PHOTOS / "faces" / name)
  result = _train_and_cross_evaluate(tmp_path, tmp_path / "photos", "auto",
                                     [])
  (evaluation,) = result["evaluations"]
  metadata = ImageFolder(data_dir=str(tmp_path / "d"),
                         file_format="array_record",
                         config="auto").info.metadata
  assert metadata["no_face"] == [] and metadata["multiple_faces"] == [
      "neutral/group.jpeg"]
  for model in result["models"]:
    assert evaluation["results"][model]["num_examples"] == len(classes)
