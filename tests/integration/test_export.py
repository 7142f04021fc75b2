"""`ferjax export` and the bundled model `ferjax predict` uses by default."""

import json
import logging
import os
import pathlib
import shutil

import cv2
import numpy as np
import pytest

from ferjax import pretrained
from ferjax.evaluate import run_evaluation as evaluate
from ferjax.labels import FER2013_CLASSES
from ferjax.recognition.classifier import load_classifier
from ferjax.run.run_dir import RunDir, export_variables
from helpers import ferjax_cli


def test_export_keeps_the_model_and_drops_the_optimizer(reference_run,
                                                        tmp_path):
  source = reference_run[0]
  out = export_variables(source, tmp_path / "exported", argv=["test"])
  original = evaluate.evaluate_run(str(source))
  exported = evaluate.evaluate_run(str(out))
  assert exported["step"] == original["step"]
  assert exported["results"] == original["results"]
  run = RunDir(out)
  assert run.read_manifest()["exported_from"]["step"] == original["step"]
  assert run.read_config().input.data_dir is None
  assert run.is_finished()
  with run.checkpoints(run.read_config()) as ckpt:
    assert ckpt.all_steps() == [original["step"]]
  size = sum(f.stat().st_size for f in (out / "checkpoints").rglob("*")
             if f.is_file())
  full = sum(f.stat().st_size for f in (
      source / "checkpoints" / str(original["step"])).rglob("*")
             if f.is_file())
  assert size < 0.75 * full  # No momentum: about half.
  with pytest.raises(FileExistsError, match="never overwrites"):
    export_variables(source, out, argv=["test"])


def test_bundled_model_is_a_fer2013_classifier():
  classifier = load_classifier(str(pretrained.FER2013_LENET5))
  assert classifier.class_names == tuple(FER2013_CLASSES)
  assert classifier.crop_shape == (48, 48, 1)
  scores = classifier.predict(np.full((2, 48, 48, 1), 128, np.uint8))
  np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
  size = sum(f.stat().st_size for f in pretrained.FER2013_LENET5.rglob("*")
             if f.is_file())
  assert size < 512 * 1024


def test_predict_without_workdir_uses_the_bundled_model(tmp_path):
  image = tmp_path / "blank.png"
  cv2.imwrite(str(image), np.full((120, 160, 3), 200, np.uint8))
  proc = ferjax_cli("predict", str(image))
  assert proc.returncode == 0, proc.stderr
  assert f"using the bundled {pretrained.DEFAULT}" in proc.stderr
  assert json.loads(proc.stdout.splitlines()[0])["faces"] == []


def test_predict_warns_about_a_synthetic_model(reference_run, tmp_path):
  image = tmp_path / "blank.png"
  cv2.imwrite(str(image), np.full((120, 160, 3), 200, np.uint8))
  proc = ferjax_cli("predict", "--workdir", str(reference_run[0]), str(image))
  assert proc.returncode == 0, proc.stderr
  assert "trained on synthetic_fer" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_export_and_reproduce_refuse_to_nest_a_run_in_its_source(tmp_path,
                                                                 capsys):
  import shutil  # pylint: disable=g-import-not-at-top
  from ferjax import cli as cli_lib  # pylint: disable=g-import-not-at-top
  from ferjax.commands import reproduce as reproduce_command  # pylint: disable=g-import-not-at-top
  run = tmp_path / "run"
  shutil.copytree(pretrained.FER2013_LENET5, run)
  before = sorted(p.relative_to(run) for p in run.rglob("*"))
  assert cli_lib.main(["export", "--workdir", str(run), "--out",
                       str(run / "exported")]) == 2
  assert capsys.readouterr().err == (
      f"ferjax export: error: {run / 'exported'}: inside the run it exports "
      f"({run}), which would then hold a run in a run; choose an OUT outside "
      "it\n")
  (tmp_path / "link").symlink_to(run)
  assert cli_lib.main(["export", "--workdir", str(run), "--out",
                       str(tmp_path / "link" / "x")]) == 2
  assert "inside the run it exports" in capsys.readouterr().err
  assert reproduce_command.main([str(run), "--workdir",
                                 str(run / "again")]) == 2
  assert f"{run / 'again'}: inside the run it reproduces" in (
      capsys.readouterr().err)
  assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
  assert cli_lib.main(["export", "--workdir", str(run), "--out",
                       str(tmp_path / "outside")]) == 0


# The shared FER2013 beside the repository, or where FER2013_DIR says.
SHARED_FER2013 = pathlib.Path(os.environ.get("FER2013_DIR") or (
    pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
    / "fer2013"))


def test_load_classifier_defaults_to_the_bundled_model_quietly(caplog):
  with caplog.at_level(logging.DEBUG):
    classifier = load_classifier()
  assert classifier.class_names == tuple(FER2013_CLASSES)
  assert [r.getMessage() for r in caplog.records
          if r.name == "absl" and r.levelno >= logging.WARNING] == []
  assert pretrained.path() == pretrained.MODELS[pretrained.DEFAULT].path


def test_predict_pretrained_on_a_generated_image(tmp_path):
  image = tmp_path / "blank.png"
  cv2.imwrite(str(image), np.full((120, 160, 3), 200, np.uint8))
  proc = ferjax_cli("predict", "--pretrained", "fer2013_lenet5", str(image))
  assert proc.returncode == 0, proc.stderr
  assert json.loads(proc.stdout.splitlines()[0]) == {"path": str(image),
                                                     "faces": []}
  assert "WARNING" not in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["eval"], "ferjax eval: error: expected --workdir DIR or --pretrained"),
    (["eval", "--pretrained", "vgg99"],
     "ferjax eval: error: --pretrained: no bundled model 'vgg99'; expected "
     "one of fer2013_resnet, fer2013_lenet5"),
    (["export", "--out", "x"], "ferjax export: error: expected --workdir"),
])
def test_pretrained_or_workdir_errors(args, message, tmp_path):
  proc = ferjax_cli(*args)
  assert proc.returncode == 2
  assert message in proc.stderr and "Traceback" not in proc.stderr


def _mini_fer2013(root: pathlib.Path, n: int) -> pathlib.Path:
  """``n`` images of each class and split from the shared FER2013."""
  for split in ("train", "test"):
    for folder in sorted((SHARED_FER2013 / split).iterdir()):
      (root / split / folder.name).mkdir(parents=True)
      for f in sorted(folder.iterdir())[:n]:
        shutil.copy(f, root / split / folder.name)
  return root


@pytest.mark.skipif(not SHARED_FER2013.is_dir(),
                    reason=f"{SHARED_FER2013} absent")
def test_eval_pretrained_on_fer2013(tmp_path):
  manual = _mini_fer2013(tmp_path / "fer2013", 10)
  proc = ferjax_cli("eval", "--pretrained", "--split", "public_test", "--json",
                    "--manual-dir", str(manual), "--data-dir",
                    str(tmp_path / "tfds"))
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  (only,) = result["results"].values()
  assert only["num_examples"] == 70  # 10 images of each of the 7 classes
  assert 0 <= only["accuracy"] <= 1
  assert result["workdir"] == str(pretrained.path())
