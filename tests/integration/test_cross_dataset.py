"""Tests of cross-dataset evaluation: classes matched by name, unshared
classes reported, and the same faces in two layouts scoring the same."""

import json

import cv2
import numpy as np

from ferjax import pretrained
from ferjax.data.synthetic_fer import render_face
from ferjax.labels import CKPLUS_CLASSES, FER2013_CLASSES
from ferjax.commands import tables
from ferjax.evaluate import cross_dataset
from helpers import ferjax_cli, write_ck, write_csv


def test_classes_are_matched_by_name_and_unshared_ones_named():
  match = cross_dataset.ClassMatch.of(FER2013_CLASSES, CKPLUS_CLASSES)
  assert match.data_only == ("contempt",)
  assert match.model_only == ("neutral",)
  # CK+'s anger is FER2013's angry, its sadness FER2013's sad.
  assert match.to_model[CKPLUS_CLASSES.index("anger")] == 0
  assert match.to_model[CKPLUS_CLASSES.index("sadness")] == 4


def test_score_keeps_unshared_examples_out_of_the_metrics_and_reports_them():
  match = cross_dataset.ClassMatch.of(("a", "b", "c"), ("b", "a", "z"))
  # Data labels b, a, z, z; the model predicts b, b, a, c.
  probs = np.eye(3)[[1, 1, 0, 2]]
  result = cross_dataset.score(probs, np.array([0, 1, 2, 2]), match)
  assert result["num_examples"] == 2 and result["examples_all"] == 4
  assert result["accuracy"] == 0.5 and result["accuracy_all"] == 0.25
  assert result["dataset_only"] == {
      "z": {"examples": 2, "predicted_as": {"a": 1, "c": 1}}}
  assert result["model_only_predicted"] == {"c": 1}


def _faces(n=28):
  return [(i % 7, render_face(np.random.default_rng(i), i % 7))
          for i in range(n)]


def test_the_same_faces_in_two_layouts_score_the_same(tmp_path):
  """The bundled model on FER2013 as its CSV and as image folders of the
  same pixels: one table, the same accuracy and confusion matrix."""
  faces = _faces()
  (tmp_path / "csv").mkdir()
  write_csv(tmp_path / "csv" / "fer2013.csv",
            [(label, "Training" if i < 7 else "PublicTest", image)
             for i, (label, image) in enumerate(faces)])
  for i, (label, image) in enumerate(faces[7:]):
    folder = tmp_path / "folders" / "test" / FER2013_CLASSES[label]
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / f"PublicTest_{i}.png"), image)
  proc = ferjax_cli(
      "eval", "--pretrained", "--json",
      "--dataset", "fer2013/original", "--data-dir", str(tmp_path / "d1"),
      "--manual-dir", str(tmp_path / "csv"),
      "--dataset", "image_folder/aligned", "--data-dir", str(tmp_path / "d2"),
      "--manual-dir", str(tmp_path / "folders"))
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  (model,) = result["models"]
  csv_eval, folder_eval = (e["results"][model]
                           for e in result["evaluations"])
  assert [e["split"] for e in result["evaluations"]] == ["public_test", "test"]
  assert csv_eval["num_examples"] == folder_eval["num_examples"] == 21
  assert csv_eval["confusion_matrix"] == folder_eval["confusion_matrix"]
  assert csv_eval["accuracy"] == folder_eval["accuracy"]


def test_unshared_classes_are_reported_for_an_ensemble(tmp_path):
  write_ck(tmp_path / "ck")
  contempt = len(list((tmp_path / "ck" / "contempt").glob("*.png")))
  model = str(pretrained.path(pretrained.DEFAULT))
  result = cross_dataset.evaluate(
      [model, model], [cross_dataset.DatasetRef(
          "ck_plus", data_dir=str(tmp_path / "d"),
          manual_dir=str(tmp_path / "ck"))])
  (evaluation,) = result["evaluations"]
  assert evaluation["split"] == "train"  # CK+'s only split.
  assert evaluation["dataset_only"] == ["contempt"]
  assert evaluation["model_only"] == ["neutral"]
  member, ensemble = (evaluation["results"][k] for k in (model, "ensemble"))
  assert member["dataset_only"]["contempt"]["examples"] == contempt
  assert member["num_examples"] == member["examples_all"] - contempt
  # The mean of one model twice is that model.
  assert ensemble["confusion_matrix"] == member["confusion_matrix"]
  text = tables.format_cross_dataset(result)
  assert f"contempt only in the dataset: {contempt} examples" in text
  assert "ensemble (mean softmax)" in text
