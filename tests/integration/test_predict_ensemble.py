"""`ferjax predict` with several runs: their ensemble on images, folders and
streams, each member with its own preprocessing, and label sets checked
before any checkpoint is read."""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax.commands import predict as predict_command
from ferjax.labels import FER2013_CLASSES
from ferjax.models import create_model
from ferjax.recognition import classifier as classifier_lib
from ferjax.recognition import pipeline, stream
from ferjax.run.run_dir import RunDir
from ferjax.train import loop
from helpers import PHOTOS, DarkSquares, square_frames, tiny_config


@pytest.fixture(scope="module")
def members(reference_run, synthetic_data_dir, tmp_path_factory):
  """Two real runs that preprocess differently: the reference run (LeNet-5
  on 32x32 RGB) and a one-epoch run of another seed on 24x24 grey."""
  workdir = tmp_path_factory.mktemp("grey24")
  loop.train_and_evaluate(tiny_config(
      synthetic_data_dir, seed=1, num_epochs=1, **{
          "input.image_size": "(24, 24)", "input.channels": 1}), workdir)
  return [str(reference_run[0]), str(workdir)]


def two_squares() -> np.ndarray:
  """A light image with two dark squares of different sizes: two 'faces'."""
  image = np.full((400, 800, 3), 230, np.uint8)
  image[100:180, 200:280] = 0
  image[260:380, 500:620] = 30
  return image


def scores(result: pipeline.FaceResult) -> np.ndarray:
  return np.array([result.scores[c] for c in FER2013_CLASSES])


def test_ensemble_scores_are_the_mean_of_the_members_run_alone(members):
  ensemble = classifier_lib.load_ensemble(members)
  alone = [pipeline.recognize(two_squares(), classifier_lib.load_classifier(w),
                              DarkSquares()) for w in members]
  together = pipeline.recognize(two_squares(), ensemble, DarkSquares())
  assert len(together) == 2
  for i, face in enumerate(together):
    each = [scores(a[i]) for a in alone]
    assert not np.allclose(each[0], each[1], atol=1e-3)  # a real average
    np.testing.assert_allclose(scores(face), np.mean(each, axis=0),
                               atol=1e-6)
    assert face.label == FER2013_CLASSES[int(np.argmax(np.mean(each, 0)))]
    record = face.to_json()
    assert [m["workdir"] for m in record["members"]] == members
    for m, a in zip(record["members"], alone, strict=True):
      assert m["label"] == a[i].label
      assert m["scores"] == a[i].to_json()["scores"]
    json.dumps(record)
  # A single classifier's faces carry no member scores.
  assert "members" not in alone[0][0].to_json()


def test_members_crop_at_their_own_training_shape(classifier):
  """A 48x48 grey member and a 32x32 RGB one: each aligns its own crops."""
  model = create_model("lenet5", num_classes=7)
  rgb = classifier_lib.classifier_from_model(
      model, model.init(jax.random.key(1), jnp.zeros((1, 32, 32, 3))),
      class_names=FER2013_CLASSES, crop_shape=(32, 32, 3),
      image_size=(32, 32), channels=3, mean=[0.4], std=[0.3])
  ensemble = classifier_lib.Ensemble((classifier, rgb), ("grey", "rgb"))
  image = two_squares()
  image[120:140, 220:240] = (200, 0, 0)  # colour only the RGB member sees
  faces = DarkSquares().detect(image)
  got = ensemble.score_faces(image, faces, margin=0.1)
  each = [c.score_faces(image, faces, margin=0.1).probs
          for c in (classifier, rgb)]
  assert [name for name, _ in got.members] == ["grey", "rgb"]
  for (_, p), want in zip(got.members, each, strict=True):
    np.testing.assert_array_equal(p, want)
  np.testing.assert_allclose(got.probs, np.mean(each, axis=0), atol=1e-7)
  empty = ensemble.score_faces(image, [], margin=0.1)
  assert empty.probs.shape == (0, 7)


def test_ensemble_in_a_stream_is_the_mean_of_the_smoothed_members(members):
  frames, _ = square_frames(5, second_from=2)
  for i, frame in enumerate(frames):
    frame[frame > 100] = 200 + 10 * i  # crops that differ frame to frame

  def run(clf):
    return list(stream.recognize_stream(frames, clf, DarkSquares(), smooth=3,
                                        detect_every=1))

  alone = [run(classifier_lib.load_classifier(w)) for w in members]
  together = run(classifier_lib.load_ensemble(members))
  for k, frame in enumerate(together):
    assert len(frame.faces) == (1 if k < 2 else 2)
    for face in frame.faces:
      each = [next(f for f in a[k].faces if f.track == face.track)
              for a in alone]
      np.testing.assert_allclose(
          scores(face), np.mean([scores(f) for f in each], axis=0), atol=1e-6)
      for (_, member), f in zip(face.members, each, strict=True):
        assert member == pytest.approx(f.scores, abs=1e-6)
      assert [m["workdir"] for m in face.to_json()["members"]] == members


def test_predict_command_prints_the_ensemble_and_each_member(
    members, tmp_path, capsys):
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  photo = PHOTOS / "faces" / "astronaut.png"
  args = [arg for w in members for arg in ("--workdir", w)]
  assert predict_command.main([*args, "--no-compile-cache", str(photo)]) == 0
  (line,) = capsys.readouterr().out.splitlines()
  (face,) = json.loads(line)["faces"]
  assert [m["workdir"] for m in face["members"]] == members
  mean = np.mean([[m["scores"][c] for c in FER2013_CLASSES]
                  for m in face["members"]], axis=0)
  # JSON scores are rounded to 4 decimals.
  np.testing.assert_allclose([face["scores"][c] for c in FER2013_CLASSES],
                             mean, atol=1e-4)
  for workdir, member in zip(members, face["members"], strict=True):
    assert predict_command.main(["--workdir", workdir, "--no-compile-cache",
                         str(photo)]) == 0
    (alone,) = json.loads(capsys.readouterr().out)["faces"]
    assert alone["box"] == face["box"]
    assert alone["scores"] == member["scores"]


def test_a_member_with_other_labels_is_refused_before_any_work(
    members, tmp_path, capsys):
  # The first member's checkpoints are gone: reading any checkpoint would
  # fail with another error than the label check's.
  first = Path(shutil.copytree(members[0], tmp_path / "no_checkpoints"))
  shutil.rmtree(first / "checkpoints")
  other = Path(shutil.copytree(members[1], tmp_path / "ckplus"))
  manifest = RunDir(other).read_manifest()
  manifest["dataset"]["class_names"] = list(reversed(FER2013_CLASSES))
  (other / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(ValueError, match=(
      f"ensemble members classify different labels: {first} has angry, "
      f"disgust.*; {other} has neutral, surprise")):
    classifier_lib.load_ensemble([str(first), str(other)])
  image = tmp_path / "a.png"
  image.write_bytes(b"")
  assert predict_command.main(["--workdir", str(first), "--workdir", str(other),
                       str(image)]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  (error,) = captured.err.splitlines()
  assert error.startswith("ferjax predict: error: ensemble members classify "
                          "different labels") and str(other) in error
