"""Tests of input.mixture: other datasets' splits added to train, labels
matched by name, sizes scaled by weight, recorded in the manifest."""

import json

import cv2
import numpy as np
import pytest

from ferjax import config as config_lib
from ferjax.data import loading, mixture
from ferjax.labels import FER2013_CLASSES
from ferjax.train import loop
from helpers import QUICKSTART, fer_rows, write_csv


def _split(labels):
  labels = np.asarray(labels, np.int32)
  images = np.arange(len(labels), dtype=np.uint8)[:, None, None, None] * \
      np.ones((1, 2, 2, 1), np.uint8)
  return loading.Split(images, labels)


def test_relabel_matches_names_and_drops_only_what_is_named():
  names = ("anger", "contempt", "happy")  # CK+-style spellings.
  split = _split([0, 1, 2, 1])
  with pytest.raises(ValueError, match="'contempt' .*drop_classes"):
    mixture.relabel(split, names, FER2013_CLASSES, (), "x")
  kept, dropped = mixture.relabel(split, names, FER2013_CLASSES,
                                  ("contempt",), "x")
  assert dropped == {"contempt": 2}
  assert [FER2013_CLASSES[i] for i in kept.labels] == ["angry", "happy"]
  np.testing.assert_array_equal(kept.images[:, 0, 0, 0], [0, 2])


def test_relabel_moves_soft_targets_to_the_run_classes():
  names = ("anger", "contempt", "happy")
  split = loading.Split(_split([0, 2]).images, np.asarray([0, 2], np.int32),
                        targets=np.asarray([[0.6, 0.2, 0.2], [0.0, 0.5, 0.5]],
                                           np.float32))
  kept, _ = mixture.relabel(split, names, FER2013_CLASSES, ("contempt",), "x")
  want = np.zeros((2, len(FER2013_CLASSES)), np.float32)
  want[0, FER2013_CLASSES.index("angry")] = 0.75
  want[0, FER2013_CLASSES.index("happy")] = 0.25
  want[1, FER2013_CLASSES.index("happy")] = 1.0
  np.testing.assert_allclose(kept.targets, want, rtol=1e-6)


def test_scale_repeats_whole_copies_then_a_seeded_sample():
  split = _split(range(10))
  twice_and_half = mixture.scale(split, 2.5, [0, 1])
  ids = twice_and_half.images[:, 0, 0, 0]
  assert len(ids) == 25
  assert np.bincount(ids, minlength=10).tolist().count(3) == 5
  assert len(set(mixture.scale(split, 0.3, [0, 1]).images[:, 0, 0, 0])) == 3
  np.testing.assert_array_equal(
      mixture.scale(split, 0.5, [0, 2]).images,
      mixture.scale(split, 0.5, [0, 2]).images)


@pytest.mark.slow  # Trains twice: about 25 s.
def test_training_on_fer2013_plus_an_own_folder_records_the_mixture(tmp_path):
  (tmp_path / "csv").mkdir()
  write_csv(tmp_path / "csv" / "fer2013.csv",
            fer_rows(n=42, usages=("Training", "PublicTest")))
  rng = np.random.default_rng(1)
  for i, folder in enumerate(["anger", "Happiness", "neutral"] * 4):
    (tmp_path / "own" / folder).mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(tmp_path / "own" / folder / f"{i}.png"),
                       rng.integers(0, 256, (48, 48), dtype=np.uint8))
  config = config_lib.apply_overrides(
      config_lib.load_config(QUICKSTART), [
          "input.dataset=fer2013", f"input.data_dir={tmp_path / 'd'}",
          f"input.manual_dir={tmp_path / 'csv'}",
          "evals={'test': {'split': 'public_test', 'tta': 'none'}}",
          "num_epochs=1", "batch_size=8", "parallel.cpu_devices=None"])
  config.input.mixture = ({
      "dataset": "image_folder", "builder_config": "aligned",
      "data_dir": str(tmp_path / "d2"), "manual_dir": str(tmp_path / "own"),
      "weight": 1.5},)
  loop.train_and_evaluate(config, tmp_path / "run")
  dataset = json.loads((tmp_path / "run" / "manifest.json").read_text()
                       )["dataset"]
  (record,) = dataset["mixture"]
  assert record["dataset"] == "image_folder" and record["examples"] == 12
  assert record["used"] == 18 and record["weight"] == 1.5
  assert record["class_counts"]["angry"] + record["class_counts"][
      "happy"] + record["class_counts"]["neutral"] == 18
  assert dataset["split_sizes_used"]["train"] == 21 + 18
  # The mixture is part of the run's config: the same config resumes.
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["input"]["mixture"][0]["weight"] == 1.5
  loop.train_and_evaluate(config, tmp_path / "run")
