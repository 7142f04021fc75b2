"""Video recognition: reading and writing video, tracking and smoothing, the
stream API and `ferjax predict` on generated videos and bad inputs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import PHOTOS, SIZE, DarkSquares, square_frames
from ferjax.commands import predict as predict_command
from ferjax import compilation_cache
from ferjax.recognition import pipeline, predict, stream, tracking, video
from ferjax.recognition.classifier import batch_bucket

FPS = 10.0


def write_video(path: Path, frames, fps: float = FPS) -> Path:
  fourcc = {".mp4": "mp4v", ".avi": "MJPG"}[path.suffix]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps,
                           (frames[0].shape[1], frames[0].shape[0]))
  assert writer.isOpened()
  for frame in frames:
    writer.write(frame)
  writer.release()
  return path


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> tuple[Path, list]:
  frames, boxes = square_frames()
  path = write_video(tmp_path_factory.mktemp("video") / "squares.avi", frames)
  return path, boxes


def count_frames(path: Path) -> tuple[int, tuple[int, int], float]:
  capture = cv2.VideoCapture(str(path))
  fps = capture.get(cv2.CAP_PROP_FPS)
  n, size = 0, None
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    n, size = n + 1, frame.shape[:2]
  capture.release()
  return n, size, fps


# Reading.

def test_read_frames_gives_every_frame_with_its_index_and_time(squares):
  path, _ = squares
  frames = list(video.read_frames(path))
  assert [f.index for f in frames] == list(range(12))
  assert [f.time for f in frames] == pytest.approx(np.arange(12) / FPS)
  assert frames[0].image.shape == (*SIZE, 3)
  # RGB, and the square is where it was drawn.
  assert frames[0].image[90, 50].max() < 50 and frames[0].image[5, 5].min() > 200


def test_read_frames_selects_a_part(squares):
  path, _ = squares
  part = [f.index for f in video.read_frames(path, start=0.3, end=0.8)]
  assert part == [3, 4, 5, 6, 7]
  assert [f.index for f in video.read_frames(path, start=0.3,
                                             max_frames=2)] == [3, 4]


def test_a_truncated_video_warns_and_keeps_its_frames(squares, tmp_path):
  data = squares[0].read_bytes()
  cut = tmp_path / "cut.avi"
  cut.write_bytes(data[:len(data) // 2])
  warnings = []
  frames = list(video.read_frames(cut, warn=warnings.append))
  assert 0 < len(frames) < 12
  assert len(warnings) == 1 and str(cut) in warnings[0]
  assert "of the 12 its header announces" in warnings[0]


@pytest.mark.parametrize("kind,message", [
    ("missing", "no such file"), ("empty", "empty file"),
    ("text", "not a readable video"), ("truncated_mp4", "not a readable video"),
    ("no_frames", "no frame could be read"), ("directory", "is a directory")])
def test_bad_videos_say_what_is_wrong(tmp_path, kind, message):
  path = tmp_path / f"{kind}.mp4"
  if kind == "empty":
    path.write_bytes(b"")
  elif kind == "text":
    path.write_text("not a video")
  elif kind == "truncated_mp4":
    # mp4v puts its index at the end: without it nothing can be decoded.
    data = write_video(tmp_path / "whole.mp4", square_frames()[0]).read_bytes()
    path.write_bytes(data[:len(data) // 2])
  elif kind == "no_frames":
    path = tmp_path / "no_frames.avi"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                    (64, 48)).release()
  elif kind == "directory":
    path.mkdir()
  with pytest.raises(video.VideoError, match=message) as e:
    list(video.read_frames(path))
  assert str(path) in str(e.value)
  assert "\n" not in str(e.value)


@pytest.mark.timeout(60)
def test_only_regular_files_are_opened_as_videos(tmp_path):
  (tmp_path / "zero.mp4").symlink_to("/dev/zero")
  os.mkfifo(tmp_path / "fifo.mp4")
  for name in ("zero.mp4", "fifo.mp4"):
    with pytest.raises(video.VideoError) as e:
      video.VideoSource(tmp_path / name)
    assert str(e.value) == (f"{tmp_path / name}: not a regular file (a FIFO "
                            "or a device); expected a video file")


def test_a_missing_camera_is_one_clear_error():
  with pytest.raises(video.VideoError, match="camera 97: cannot be opened"):
    video.VideoSource(97)
  with pytest.raises(video.VideoError, match="camera 99999999999999: no such "
                     "camera"):
    video.VideoSource(99999999999999)


# Writing.

def test_writer_keeps_size_and_rate_and_refuses_other_sizes(tmp_path):
  path = tmp_path / "out" / "a.mp4"
  frames, _ = square_frames(5)
  with video.VideoWriter(path, 12.5) as writer:
    for frame in frames:
      writer.write(frame)
    assert not path.exists()  # only a hidden partial file until closed
    with pytest.raises(video.VideoError, match="frame of 10x10"):
      writer.write(np.zeros((10, 10, 3), np.uint8))
  assert count_frames(path) == (5, SIZE, pytest.approx(12.5))
  assert [p.name for p in path.parent.iterdir()] == ["a.mp4"]
  with pytest.raises(video.VideoError, match="cannot write .gif"):
    video.VideoWriter(tmp_path / "a.gif", 10)


def test_an_interrupted_writer_keeps_its_frames_beside_the_complete_video(
    tmp_path):
  path = tmp_path / "a.avi"
  frames, _ = square_frames(6)
  with video.VideoWriter(path, FPS) as writer:
    for frame in frames:
      writer.write(frame)
  complete = path.read_bytes()
  with pytest.raises(KeyboardInterrupt):
    with video.VideoWriter(path, FPS) as writer:
      for i, frame in enumerate(frames):
        if i == 4:
          raise KeyboardInterrupt
        writer.write(frame)
  assert path.read_bytes() == complete
  assert count_frames(tmp_path / "a.partial.avi")[0] == 4
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.avi",
                                                         "a.partial.avi"]


def noise_frames(n: int) -> list[np.ndarray]:
  """Light noise (no dark pixel for DarkSquares): frames that compress
  badly, so that a few fill a small disk."""
  rng = np.random.default_rng(0)
  return [rng.integers(130, 256, (*SIZE, 3), np.uint8) for _ in range(n)]


_WRITE_PAST_A_LIMIT = """
import resource, signal, sys
import numpy as np
from ferjax.recognition import video
# Writes past RLIMIT_FSIZE fail (EFBIG), as on a full disk, instead of
# killing the process.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY))
rng = np.random.default_rng(0)
writer = video.VideoWriter(sys.argv[1], 10.0)
for _ in range(30):
  writer.write(rng.integers(60, 256, (240, 320, 3), np.uint8))
try:
  writer.close()
except video.VideoError as e:
  print(e)
  sys.exit(3)
"""


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_whose_writes_fail_is_refused_and_the_earlier_one_kept(
    tmp_path, suffix):
  # No root needed: a file size limit makes OpenCV's writes fail unseen.
  path = tmp_path / f"a{suffix}"
  with video.VideoWriter(path, FPS) as writer:
    for frame in square_frames(4)[0]:
      writer.write(frame)
  earlier = path.read_bytes()
  done = subprocess.run([sys.executable, "-c", _WRITE_PAST_A_LIMIT, str(path)],
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 3, done.stderr
  assert done.stdout.startswith(f"{path}: not written: ")
  assert "an earlier file of that name is kept" in done.stdout
  assert path.read_bytes() == earlier
  assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.fixture
def small_disk(tmp_path):
  """A 1 MB tmpfs at tmp_path/disk; skips where mounting is not allowed."""
  disk = tmp_path / "disk"
  disk.mkdir()
  try:
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
        capture_output=True, text=True, timeout=30).returncode == 0
  except OSError:
    mounted = False
  if not mounted:
    pytest.skip("cannot mount a tmpfs here (needs root)")
  yield disk
  subprocess.run(["umount", str(disk)], check=True, timeout=30)


def test_predict_on_a_full_disk_fails_naming_the_video_and_keeps_the_earlier(
    classifier, small_disk, tmp_path, capsys):
  source = write_video(tmp_path / "noise.avi", noise_frames(30))
  out = small_disk / "out"
  with video.VideoWriter(out / "noise.avi", FPS) as writer:
    for frame in square_frames(4)[0]:
      writer.write(frame)
  earlier = (out / "noise.avi").read_bytes()
  code = predict_command.run([str(source)], classifier, DarkSquares(), out)
  assert code == 1
  last = json.loads(capsys.readouterr().out.splitlines()[-1])
  assert last["path"] == str(source)
  assert last["error"].startswith(f"{out / 'noise.avi'}: not written: ")
  assert "(the disk is full)" in last["error"]
  assert (out / "noise.avi").read_bytes() == earlier
  assert [p.name for p in out.iterdir()] == ["noise.avi"]


# Tracking and smoothing.

def test_match_pairs_boxes_by_overlap_one_to_one():
  previous = [(0, 0, 10, 10), (100, 100, 10, 10), (50, 50, 10, 10)]
  current = [(101, 101, 10, 10), (1, 0, 10, 10), (300, 300, 5, 5)]
  assert tracking.match(previous, current) == [(1, 0), (0, 1)]
  # Two detections on one track: only the better one gets it.
  assert tracking.match([(0, 0, 10, 10)],
                        [(4, 0, 10, 10), (1, 0, 10, 10)]) == [(0, 1)]
  assert tracking.match(np.zeros((0, 4)), current) == []


def test_tracker_keeps_ids_and_gives_new_ones_to_new_faces():
  tracker = tracking.Tracker(max_missed=1)
  assert tracker.update([(0, 0, 20, 20)]) == [0]
  assert tracker.update([(80, 0, 20, 20), (3, 0, 20, 20)]) == [1, 0]
  assert tracker.update([(6, 0, 20, 20)]) == [0]  # 1 missed once: kept
  assert tracker.update([(9, 0, 20, 20), (80, 0, 20, 20)]) == [0, 1]
  tracker.update([(12, 0, 20, 20)])
  tracker.update([(15, 0, 20, 20)])  # 1 missed twice: ended
  assert tracker.update([(18, 0, 20, 20), (80, 0, 20, 20)]) == [0, 2]
  tracker.end_all()
  assert tracker.update([(18, 0, 20, 20)]) == [3]


def test_smoothing_is_the_documented_moving_average():
  assert tracking.smoothing_alpha(3) == 0.5
  assert tracking.smoothing_alpha(0) == tracking.smoothing_alpha(1) == 1.0
  with pytest.raises(ValueError, match="window"):
    tracking.smoothing_alpha(-1)
  tracker = tracking.Tracker(smooth=3)
  ids = tracker.update([(0, 0, 10, 10)])
  np.testing.assert_allclose(tracker.smooth(ids, [[1.0, 0.0]]), [[1, 0]])
  ids = tracker.update([(0, 0, 10, 10), (50, 50, 10, 10)])
  out = tracker.smooth(ids, [[0.0, 1.0], [0.0, 1.0]])
  # The old track averages; the new one starts from its own scores.
  np.testing.assert_allclose(out, [[0.5, 0.5], [0.0, 1.0]])
  ids = tracker.update([(0, 0, 10, 10)])
  np.testing.assert_allclose(tracker.smooth(ids, [[0.0, 1.0]]),
                             [[0.25, 0.75]])
  off = tracking.Tracker(smooth=0)
  for scores in ([[1.0, 0.0]], [[0.2, 0.8]]):
    ids = off.update([(0, 0, 10, 10)])
    np.testing.assert_allclose(off.smooth(ids, scores), scores)


# The stream API.

@pytest.mark.parametrize("detect_every", [1, 3])
def test_stream_tracks_faces_through_a_generated_video(classifier, squares,
                                                       detect_every):
  path, truth = squares
  results = list(stream.recognize_stream(
      video.read_frames(path), classifier, pipeline.MultiResolution(
          DarkSquares(), (1024,)), detect_every=detect_every))
  assert [r.index for r in results] == list(range(12))
  assert [r.detected for r in results] == [
      i % detect_every == 0 for i in range(12)]
  for r, boxes in zip(results, truth, strict=True):
    assert len(r.faces) == len(boxes), r.index
    for face in r.faces:
      want = boxes[face.track]  # moving square is track 0, the still one 1
      assert pipeline.iou(face.box, want) > 0.8, (r.index, face.box, want)
      assert face.label == max(face.scores, key=face.scores.get)
    record = r.to_json()
    assert record["frame"] == r.index
    assert record["time"] == pytest.approx(r.index / FPS)
    assert {f["track"] for f in record["faces"]} == set(range(len(boxes)))
    json.dumps(record)


def test_stream_smooths_scores_per_track(classifier):
  frames, _ = square_frames(4, second_from=99)
  for i, frame in enumerate(frames):
    frame[frame > 100] = 200 + 10 * i  # crops that differ frame to frame
  raw = [r.faces[0].scores for r in stream.recognize_stream(
      frames, classifier, DarkSquares(), smooth=0)]
  smoothed = [r.faces[0].scores for r in stream.recognize_stream(
      frames, classifier, DarkSquares(), smooth=3)]
  names = list(raw[0])
  raw = np.asarray([[s[k] for k in names] for s in raw])
  smoothed = np.asarray([[s[k] for k in names] for s in smoothed])
  expected = raw.copy()
  for i in range(1, len(raw)):
    expected[i] = 0.5 * raw[i] + 0.5 * expected[i - 1]
  np.testing.assert_allclose(smoothed, expected, atol=1e-6)
  assert not np.allclose(raw[0], raw[-1])  # the crops differ: a real test


def test_a_scene_cut_ends_the_tracks(classifier):
  frames, _ = square_frames(6, second_from=99)
  frames = [f[..., ::-1].copy() for f in frames]
  for frame in frames[3:]:
    frame[frame > 100] = 140  # the background changes at once
  results = list(stream.recognize_stream(frames, classifier, DarkSquares(),
                                         detect_every=10))
  assert [r.faces[0].track for r in results] == [0, 0, 0, 1, 1, 1]
  assert [r.detected for r in results] == [True, False, False, True, False,
                                           False]


def test_stream_takes_frames_of_any_size_and_rejects_bad_settings(classifier):
  s = stream.FaceStream(classifier, DarkSquares(), detect_every=2)
  for shape in ((240, 320), (100, 80), (240, 320)):
    image = np.full((*shape, 3), 230, np.uint8)
    image[20:60, 20:60] = 0
    assert len(s.process(image).faces) == 1
  with pytest.raises(ValueError, match="detect_every"):
    stream.FaceStream(classifier, DarkSquares(), detect_every=0)


def _moving_photo_video(path: Path, n: int) -> list[tuple[int, int]]:
  """A video of the astronaut photo's face region sliding over a grey
  background; returns each frame's paste offset."""
  photo = cv2.imread(str(PHOTOS / "faces" / "astronaut.png"))
  patch = photo[20:220, 140:310]
  frames, offsets = [], []
  for i in range(n):
    frame = np.full((300, 400, 3), 90, np.uint8)
    x, y = 60 + 8 * i, 40 + 3 * i
    frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
    frames.append(frame)
    offsets.append((x - 140, y - 20))
  write_video(path, frames, 25.0)
  return offsets


def test_mtcnn_follows_a_real_face_between_detections(classifier, tmp_path):
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  path = tmp_path / "face.mp4"
  offsets = _moving_photo_video(path, 6)
  every = list(stream.recognize_stream(video.read_frames(path), classifier,
                                       "mtcnn", detect_every=1))
  followed = list(stream.recognize_stream(video.read_frames(path), classifier,
                                          "mtcnn", detect_every=4))
  # The astronaut's face, (180, 65, 85, 105) in the photo, moved along.
  for r, f, (dx, dy) in zip(every, followed, offsets, strict=True):
    truth = (180 + dx, 65 + dy, 85, 105)
    assert len(r.faces) == len(f.faces) == 1
    assert pipeline.iou(r.faces[0].box, truth) > 0.5
    assert pipeline.iou(f.faces[0].box, r.faces[0].box) > 0.8
    assert f.faces[0].track == 0 and f.faces[0].landmarks is not None
  assert [f.detected for f in followed] == [True, False, False, False, True,
                                           False]


# `ferjax predict` on videos.

def test_predict_video_prints_frames_and_writes_the_annotated_video(
    classifier, squares, tmp_path, capsys):
  path, truth = squares
  out = tmp_path / "out"
  code = predict_command.run(
      [str(path)], classifier,
      pipeline.MultiResolution(DarkSquares(), (1024,)), out, detect_every=2)
  assert code == 0
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r["frame"] for r in records] == list(range(12))
  assert all(r["path"] == str(path) for r in records)
  assert [len(r["faces"]) for r in records] == [len(b) for b in truth]
  assert count_frames(out / "squares.avi") == (12, SIZE, pytest.approx(FPS))
  first = cv2.VideoCapture(str(out / "squares.avi")).read()[1]
  x, y, w, h = records[0]["faces"][0]["box"]
  # The box's green outline, through MJPG's blur.
  edge = first[y + h // 2, x - 1:x + 2].astype(int)
  assert (edge[:, 1] - edge[:, [0, 2]].max(axis=1)).max() > 80


def test_predict_reports_bad_videos_and_runs_the_rest(classifier, squares,
                                                      tmp_path, capsys):
  bad = tmp_path / "bad.mp4"
  bad.write_text("not a video")
  code = predict_command.run([str(bad), 97, str(squares[0])], classifier,
                             DarkSquares(), None, max_frames=2)
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert code == 0
  assert lines[0] == {"path": str(bad), "error": f"{bad}: not a readable "
                      "video (expected a container and codec OpenCV's FFmpeg "
                      "can decode, e.g. H.264 in .mp4)"}
  assert lines[1]["path"] == "camera 97" and "cannot be opened" in lines[1][
      "error"]
  assert [r["frame"] for r in lines[2:]] == [0, 1]
  assert predict_command.run([str(bad)], classifier, DarkSquares()) == 1


def test_interrupting_predict_keeps_the_video_written_so_far_beside(
    classifier, squares, tmp_path):
  assert list(predict.predict_video(squares[0], classifier, DarkSquares(),
                                    tmp_path))[-1]["frame"] == 11
  complete = (tmp_path / "squares.avi").read_bytes()
  records = predict.predict_video(squares[0], classifier, DarkSquares(),
                                  tmp_path)
  for _ in range(5):
    next(records)
  with pytest.raises(KeyboardInterrupt):
    records.throw(KeyboardInterrupt)
  assert (tmp_path / "squares.avi").read_bytes() == complete
  assert count_frames(tmp_path / "squares.partial.avi")[0] == 5
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      "squares.avi", "squares.partial.avi"]


@pytest.mark.slow
def test_sigterm_keeps_the_complete_video_and_names_hidden_leftovers(
    tmp_path):
  frames = [f for _ in range(25) for f in square_frames(12)[0]]
  source = write_video(tmp_path / "long.avi", frames)
  out = tmp_path / "out"
  with video.VideoWriter(out / "long.avi", FPS) as writer:
    for frame in frames[:4]:
      writer.write(frame)
  complete = (out / "long.avi").read_bytes()
  leftover = out / ".old.partial.mp4"  # As a kill -9 leaves it.
  leftover.write_bytes(b"\0" * 100)
  process = subprocess.Popen(
      [sys.executable, "-m", "ferjax.cli", "predict", str(source), "--out",
       str(out), "--detector", "haar", "--detect-every", "1",
       "--no-compile-cache"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  try:
    assert json.loads(process.stdout.readline())["frame"] == 0
    process.terminate()
    _, err = process.communicate(timeout=120)
  finally:
    process.kill()
  assert process.returncode == 130, err
  assert f"{leftover}: an unfinished video of a killed run" in err
  assert "its first" in err and f"{out / 'long.partial.avi'}" in err
  assert (out / "long.avi").read_bytes() == complete
  assert 1 <= count_frames(out / "long.partial.avi")[0] < len(frames)
  assert sorted(p.name for p in out.iterdir()) == [
      ".old.partial.mp4", "long.avi", "long.partial.avi"]


@pytest.mark.parametrize("args,message", [
    (["--detect-every", "0", "x.mp4"], "--detect-every must be >= 1"),
    (["--smooth", "-1", "x.mp4"], "--smooth must be >= 0"),
    (["--start", "2", "--end", "1", "x.mp4"], "--end must be after"),
    ([], "give image or video files")])
def test_main_rejects_bad_video_options(tmp_path, capsys, args, message):
  with pytest.raises(SystemExit) as e:
    predict_command.main(["--workdir", str(tmp_path), *args])
  assert e.value.code == 2
  assert message in capsys.readouterr().err


# Speed without recompiling.

def test_classifier_pads_batches_to_a_few_sizes(classifier):
  assert [batch_bucket(n) for n in (1, 2, 3, 5, 64, 65, 130)] == [
      1, 2, 4, 8, 64, 128, 192]
  rng = np.random.default_rng(0)
  crops = rng.integers(0, 256, (5, 48, 48, 1), np.uint8)
  together = classifier.predict(crops)
  alone = np.concatenate([classifier.predict(c[None]) for c in crops])
  np.testing.assert_allclose(together, alone, atol=1e-6)
  assert together.shape == (5, 7)


def test_compilation_cache_location_and_off_switch(monkeypatch, tmp_path):
  monkeypatch.delenv(compilation_cache.ENV, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compilation_cache.default_dir() == tmp_path / "ferjax" / "jax"
  monkeypatch.setenv(compilation_cache.ENV, str(tmp_path / "mine"))
  assert compilation_cache.default_dir() == tmp_path / "mine"
  for off in ("off", "0", "false"):
    monkeypatch.setenv(compilation_cache.ENV, off)
    assert compilation_cache.default_dir() is None
  assert compilation_cache.enable(None) is None


_CACHE_PROBE = """
import sys
import jax
from ferjax import compilation_cache
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
compilation_cache.enable(sys.argv[1])
print(float(jax.jit(lambda x: (x * 3.0 + 1.0).sum())(jax.numpy.ones(7))))
for kind in ("hits", "misses"):
  print(events.count(f"/jax/compilation_cache/cache_{kind}"))
"""


def test_a_second_process_reads_the_compiled_program_from_the_cache(
    tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  runs = [subprocess.run([sys.executable, "-c", _CACHE_PROBE,
                          str(tmp_path / "cache")], capture_output=True,
                         text=True, env=env, check=True).stdout.split()
          for _ in range(2)]
  (value, hits, misses), second = runs
  assert value == "28.0" and hits == "0" and int(misses) >= 1
  # Every program compiled by the first process is read by the second.
  assert second == ["28.0", misses, "0"]
  assert any((tmp_path / "cache").iterdir())


def test_predict_never_writes_the_annotated_video_over_its_input(
    classifier, squares, tmp_path):
  source = tmp_path / "squares.avi"
  source.write_bytes(squares[0].read_bytes())
  records = list(predict.predict_video(source, classifier, DarkSquares(),
                                       tmp_path))
  assert records == [{"path": str(source), "error": f"{source}: --out "
                      f"{tmp_path} would overwrite this input with its "
                      "annotated copy"}]
  assert source.read_bytes() == squares[0].read_bytes()


def test_the_command_runs_a_video_with_a_trained_run(reference_run, squares,
                                                     tmp_path, capsys):
  workdir, _ = reference_run
  code = predict_command.main(["--workdir", str(workdir), str(squares[0]), "--out",
                       str(tmp_path), "--max-frames", "3", "--detector",
                       "haar", "--no-compile-cache"])
  assert code == 0
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert [r["frame"] for r in lines] == [0, 1, 2]
  assert count_frames(tmp_path / "squares.avi")[0] == 3


def test_predict_video_reports_frames_done_and_rate(classifier, squares):
  path, _ = squares
  notes = []
  records = list(predict.predict_video(
      path, classifier, DarkSquares(), progress=notes.append,
      progress_every=0))
  assert len(records) == 12
  # One line a frame (every 0 s), then the summary.
  assert [n.split(": ")[1].split(" frames")[0] for n in notes[:-1]] == [
      f"{i}/12" for i in range(1, 13)]
  assert all(n.startswith(f"{path}: ") and n.endswith(" frames/s")
             for n in notes[:-1])
  assert re.fullmatch(rf"{re.escape(str(path))}: 12 frames in \d+\.\d s "
                      r"\(\d+\.\d frames/s\)", notes[-1]), notes[-1]


def test_predict_run_prints_video_progress_on_stderr(classifier, squares,
                                                     capsys):
  assert predict_command.run([str(squares[0])], classifier, DarkSquares(),
                             max_frames=5) == 0
  out, err = capsys.readouterr()
  assert len(out.splitlines()) == 5 and "frames/s" not in out
  assert f"ferjax predict: {squares[0]}: 5 frames in " in err
