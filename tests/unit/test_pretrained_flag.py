"""A bare ``--pretrained`` never takes an existing file or directory as the
bundled model's name, in every command that has the flag."""

import json

import cv2
import numpy as np
import pytest

from ferjax import cli
from ferjax import pretrained
from ferjax.commands import run_dirs


@pytest.fixture
def photos(tmp_path):
  folder = tmp_path / "photos"
  folder.mkdir()
  cv2.imwrite(str(folder / "blank.png"), np.full((60, 80, 3), 200, np.uint8))
  return folder


def test_a_path_after_pretrained_is_not_its_name(photos):
  image = str(photos / "blank.png")
  assert run_dirs.pretrained_apart(["--pretrained", image]) == [
      f"--pretrained={pretrained.DEFAULT}", image]
  # A model's name, a missing path and an option stay the flag's value.
  for argv in (["--pretrained", "fer2013_lenet5"], ["--pretrained", "vgg99"],
               ["--pretrained", "--out", image], ["--", "--pretrained",
                                                  image]):
    assert run_dirs.pretrained_apart(argv) == argv


def _lines(capsys) -> list[dict]:
  return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_reads_the_photo_after_pretrained(photos, capsys):
  image = str(photos / "blank.png")
  assert cli.main(["predict", "--pretrained", image, "--detector", "haar",
                   "--no-compile-cache"]) == 0
  assert _lines(capsys) == [{"path": image, "faces": []}]
  # A folder after it, with --workdir: an ensemble of the two, and the
  # folder's images.
  assert cli.main(["predict", "--workdir", str(pretrained.path()),
                   "--pretrained", str(photos), "--detector", "haar",
                   "--no-compile-cache"]) == 0
  assert _lines(capsys) == [{"path": image, "faces": []}]


@pytest.mark.parametrize("command", [
    ["eval"], ["export", "--out", "x.onnx", "--format", "onnx"],
    ["calibrate", "--out", "calibrated"]])
def test_other_commands_refuse_the_path_not_as_a_model(command, photos,
                                                       capsys):
  assert cli.main([*command, "--pretrained", str(photos)]) == 2
  err = capsys.readouterr().err
  assert f"unrecognised arguments: {photos}" in err, err
  assert "no bundled model" not in err


@pytest.mark.parametrize("argv, first", [
    (["--pretrained", "--workdir", "a"], "pretrained"),
    (["--workdir", "a", "--pretrained"], "a"),
])
def test_an_ensemble_keeps_the_order_given(argv, first):
  from ferjax.commands import eval as eval_command  # pylint: disable=g-import-not-at-top
  args, _ = eval_command.build_parser().parse_known_args(argv)
  workdirs = run_dirs.from_args(args)
  assert len(workdirs) == 2
  assert workdirs[0] == (str(pretrained.path()) if first == "pretrained"
                         else "a")
