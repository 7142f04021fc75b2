"""`ferjax predict --out` never writes over, or rereads, its inputs."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferjax.commands import predict as predict_command
from ferjax.recognition import inputs, predict


@pytest.fixture
def photos(tmp_path) -> Path:
  """A folder with a PNG and a GIF (no faces: noise)."""
  folder = tmp_path / "photos"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for name in ("a.png", "b.gif"):
    ok, data = cv2.imencode(Path(name).suffix,
                            rng.integers(0, 256, (40, 50, 3), np.uint8))
    assert ok
    (folder / name).write_bytes(data.tobytes())
  return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
  return {str(p.relative_to(folder)): p.read_bytes()
          for p in sorted(folder.rglob("*")) if p.is_file()}


def test_out_dir_that_is_or_holds_an_input_is_refused(tmp_path, photos):
  with pytest.raises(ValueError, match="is the input"):
    inputs.check_out_dir(photos, [photos])
  with pytest.raises(ValueError, match="contains the input"):
    inputs.check_out_dir(tmp_path, [photos / "a.png"])
  with pytest.raises(ValueError, match="contains the input"):
    inputs.check_out_dir(tmp_path / "." / "photos" / "..", [photos])
  inputs.check_out_dir(photos / "annotated", [photos])
  inputs.check_out_dir(None, [photos])


def test_cli_refuses_out_equal_to_the_input_folder(tmp_path, photos, capsys):
  before = _snapshot(photos)
  assert predict_command.main(["--workdir", str(tmp_path / "run"), "--out",
                       str(photos), str(photos)]) == 2
  err = capsys.readouterr().err
  assert f"--out {photos} is the input {photos}" in err
  assert "Traceback" not in err
  assert _snapshot(photos) == before


def test_library_refuses_it_too(classifier, photos):
  before = _snapshot(photos)
  with pytest.raises(ValueError, match="overwrite the originals"):
    list(predict.predict_paths([photos / "a.png"], classifier, "haar",
                               photos))
  assert _snapshot(photos) == before


def test_outputs_inside_the_input_folder_are_not_read_again(
    classifier, photos, capsys):
  """Two runs over a folder that holds the first run's outputs."""
  out = photos / "annotated"
  originals = _snapshot(photos)
  for _ in range(2):
    assert predict_command.run([str(photos)], classifier, "haar", out) == 0
    records = [json.loads(line)
               for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in records] == ["a.png", "b.gif"]
    assert all(r["faces"] == [] for r in records)
  assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
  assert {k: v for k, v in _snapshot(photos).items()
          if not k.startswith("annotated")} == originals


def test_scanned_folders_include_gif_files(photos):
  assert [p.name for p in inputs.expand_paths([photos])] == ["a.png",
                                                             "b.gif"]
  assert predict.load_image(photos / "b.gif").shape == (40, 50, 3)


def test_a_folder_s_videos_are_read_too(classifier, photos, capsys):
  writer = cv2.VideoWriter(str(photos / "clip.avi"),
                           cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
  for _ in range(3):
    writer.write(np.full((48, 64, 3), 200, np.uint8))
  writer.release()
  out = photos / "annotated"
  for _ in range(2):  # The annotated clip inside the folder is not reread.
    assert predict_command.run([str(photos)], classifier, "haar", out,
                               max_frames=3) == 0
    records = [json.loads(line)
               for line in capsys.readouterr().out.splitlines()]
    assert [(Path(r["path"]).name, r.get("frame")) for r in records] == [
        ("a.png", None), ("b.gif", None), ("clip.avi", 0), ("clip.avi", 1),
        ("clip.avi", 2)]


def test_an_empty_folder_is_reported(classifier, tmp_path, capsys):
  assert predict_command.run([str(tmp_path)], classifier, "haar") == 1
  assert (f"no image or video files found in {tmp_path}"
          in capsys.readouterr().err)
