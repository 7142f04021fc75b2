"""Alignment, the recognize() pipeline and `ferjax predict` on files."""

import dataclasses
import json
import math
import os
from pathlib import Path
import struct
import zlib

import cv2
import numpy as np
import pytest

from ferjax.commands import predict as predict_command
from ferjax.labels import FER2013_CLASSES
from ferjax.recognition import align, detectors, mtcnn, pipeline, predict
from ferjax.recognition.align import Face
from helpers import PHOTOS, DarkSquares


# Every fully visible face in the shared photos, (x, y, w, h): the original
# MTCNN's boxes where it found the face, drawn by hand for the Santa, all
# checked by eye. The woman cut off above the nose in group.jpeg may be
# found or not.
FACES = {
    "faces/angry.jpg": [(200, 475, 835, 1070)],
    "faces/astronaut.png": [(180, 65, 85, 105)],
    "faces/group.jpeg": [(320, 25, 105, 130), (620, 80, 125, 140),
                         (165, 235, 130, 180), (945, 280, 140, 185)],
    "faces/happy-baby.jpeg": [(490, 130, 255, 320)],
    "faces/neutral.jpeg": [(290, 295, 410, 585)],
    "faces/sad-baby.jpeg": [(400, 10, 745, 840)],
    "faces/surprised.jpeg": [(690, 360, 310, 310)],
    "no_face/non_face.jpg": [],
}
OPTIONAL = {"faces/group.jpeg": [(1010, 0, 120, 70)]}


def dots(size=(200, 240), centres=((90, 80), (150, 100)), radius=6):
  """A light RGB image with dark dots: stand-ins for eyes."""
  image = np.full((*size, 3), 220, np.uint8)
  for c in centres:
    cv2.circle(image, c, radius, (0, 0, 0), -1)
  return image


def blob_centres(grey: np.ndarray) -> list[tuple[float, float]]:
  mask = (grey < 100).astype(np.uint8)
  n, _, _, centroids = cv2.connectedComponentsWithStats(mask)
  return sorted(map(tuple, centroids[1:n]))


def test_align_levels_the_eyes():
  left, right = (90, 80), (150, 100)  # tilted by atan(20 / 60) = 18.4 deg
  face = Face((70, 40, 100, 100), 0.9,
              {"left_eye": left, "right_eye": right})
  crop = align.align_face(dots(centres=(left, right)), face, (96, 96, 1),
                          margin=0.1)
  assert crop.shape == (96, 96, 1) and crop.dtype == np.uint8
  (lx, ly), (rx, ry) = blob_centres(crop[..., 0])
  assert abs(ly - ry) < 1.0
  # Rotation keeps the eyes' distance: 63.2 px, scaled by 96 / 120.
  assert math.hypot(rx - lx, ry - ly) == pytest.approx(
      math.dist(left, right) * 96 / 120, abs=1.5)


def test_align_without_eyes_only_crops_and_resizes():
  image = dots()
  face = Face((70, 40, 100, 100))
  crop = align.align_face(image, face, (50, 50, 3), margin=0.0)
  want = cv2.resize(image[40:140, 70:170], (50, 50),
                    interpolation=cv2.INTER_AREA)
  np.testing.assert_array_equal(crop, want)


def test_align_pads_faces_at_the_border_and_keeps_the_aspect():
  image = dots()
  face = Face((200, 150, 60, 60))  # partly outside the 240 x 200 image
  crop = align.align_face(image, face, (40, 20, 1), margin=0.25)
  assert crop.shape == (40, 20, 1)
  assert align.crop_region(face, (40, 20), 0.25) == (230, 180, 90, 180)


def test_eye_angle_ignores_missing_or_implausible_eyes():
  assert align.eye_angle(Face((0, 0, 10, 10))) == 0.0
  steep = Face((0, 0, 10, 10), None, {"left_eye": (0, 0),
                                      "right_eye": (1, 5)})
  assert align.eye_angle(steep) == 0.0
  tilted = Face((0, 0, 10, 10), None, {"left_eye": (0, 0),
                                       "right_eye": (10, 10)})
  assert align.eye_angle(tilted) == pytest.approx(45.0)


def test_align_rejects_bad_inputs():
  face = Face((0, 0, 10, 10))
  with pytest.raises(ValueError, match="uint8 RGB"):
    align.align_face(np.zeros((20, 20), np.uint8), face, (8, 8, 1))
  with pytest.raises(ValueError, match="channels"):
    align.align_face(np.zeros((20, 20, 3), np.uint8), face, (8, 8, 2))
  assert align.align_faces(np.zeros((20, 20, 3), np.uint8), [],
                           (8, 8, 1)).shape == (0, 8, 8, 1)


@pytest.mark.parametrize("image,expected", [
    (np.full((4, 5), 7, np.uint8), 7),
    (np.full((4, 5, 1), 7, np.uint8), 7),
    (np.full((4, 5, 2), 7, np.uint8), 7),
    (np.full((4, 5, 4), 7, np.uint8), 7),
    (np.full((4, 5, 3), 7 * 256 + 255, np.uint16), 7),
])
def test_as_rgb_converts_grey_alpha_and_16_bit(image, expected):
  rgb = pipeline.as_rgb(image)
  assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
  assert (rgb == expected).all()


def test_as_rgb_rejects_what_it_cannot_convert():
  with pytest.raises(ValueError, match="uint8 or uint16"):
    pipeline.as_rgb(np.zeros((4, 4, 3), np.float32))
  with pytest.raises(ValueError, match=r"got \(4, 4, 5\)"):
    pipeline.as_rgb(np.zeros((4, 4, 5), np.uint8))
  with pytest.raises(ValueError, match="empty"):
    pipeline.as_rgb(np.zeros((0, 4, 3), np.uint8))


def test_multi_resolution_maps_faces_back_and_merges_duplicates():
  image = np.full((400, 800, 3), 255, np.uint8)
  image[100:180, 200:280] = 0
  image[300:340, 600:640] = 0
  faces = pipeline.MultiResolution(DarkSquares(), (200, 400, 2000)).detect(
      image)
  # Three resolutions, one face per square after merging.
  assert len(faces) == 2
  boxes = sorted(f.box for f in faces)
  np.testing.assert_allclose(boxes[0], (200, 100, 80, 80), atol=4)
  np.testing.assert_allclose(boxes[1], (600, 300, 40, 40), atol=4)


@dataclasses.dataclass
class SizedDarkSquares:
  """Dark squares of ``low`` to ``high`` pixels in the detector's input: a
  detector that finds a square at some image sizes and not at others."""

  low: float
  high: float

  def detect(self, image):
    return [f for f in DarkSquares().detect(image)
            if self.low <= f.box[2] <= self.high]


class UnscoredDarkSquares:
  """DarkSquares without scores, as Haar finds faces."""

  def detect(self, image):
    return [Face(f.box, None) for f in DarkSquares().detect(image)]


def test_smaller_copies_leave_small_faces_to_the_largest():
  # Issue 32: MTCNN scored a patch of a suit as a face in the 640-pixel copy
  # only, at 18 pixels; the union of copies kept it.
  image = np.full((600, 1024, 3), 255, np.uint8)
  image[100:130, 100:130] = 0  # 30 px here, 19 px in the 640-pixel copy
  image[150:550, 500:900] = 0  # 400 px here, 250 px in the 640-pixel copy
  finder = SizedDarkSquares(10, 300)
  faces = pipeline.MultiResolution(finder, (640, 1024), min_face=20).detect(
      image)
  # The 1024 copy (this image) sees only the small square; the 640 copy sees
  # both, but the small one at 19 < 20 * 1024 / 640 pixels is not its to
  # report; the big one, beyond the largest copy's reach, is.
  np.testing.assert_allclose(sorted(f.box for f in faces),
                             [(100, 100, 30, 30), (500, 150, 400, 400)],
                             atol=4)
  finder = SizedDarkSquares(10, 25)  # finds the small square at 640 only
  assert pipeline.MultiResolution(finder, (640, 1024), min_face=20).detect(
      image) == []
  assert len(pipeline.MultiResolution(finder, (640, 1024)).detect(image)) == 1
  assert pipeline.get_detector("auto").min_face == mtcnn.MIN_FACE_SIZE


def test_faces_scored_under_min_score_are_not_reported():
  image = np.full((400, 800, 3), 255, np.uint8)
  image[100:180, 200:280] = 0  # DarkSquares scores 0.0064
  image[300:340, 600:640] = 0  # 0.0016
  faces = pipeline.MultiResolution(DarkSquares(), (800,),
                                   min_score=0.004).detect(image)
  assert [f.box for f in faces] == [(200, 100, 80, 80)]
  # Detectors without scores (Haar) keep every face.
  unscored = pipeline.MultiResolution(UnscoredDarkSquares(), (800,),
                                      min_score=0.99)
  assert len(unscored.detect(image)) == 2
  for name in ("auto", "mtcnn"):
    assert pipeline.get_detector(name).min_score == detectors.MIN_SCORE
  haar = pipeline.get_detector("haar")  # Reports every face it finds.
  assert (haar.min_face, haar.min_score) == (0.0, 0.0)


def test_merge_faces_keeps_the_best_of_overlapping_faces():
  a, b = Face((0, 0, 10, 10), 0.9), Face((1, 1, 10, 10), 0.95)
  c = Face((50, 50, 10, 10), None)
  assert pipeline.merge_faces([a, b, c]) == [b, c]
  assert pipeline.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)


def test_get_detector_rejects_unknown_names():
  with pytest.raises(ValueError, match="auto, haar, mtcnn"):
    pipeline.get_detector("dlib")


@pytest.mark.parametrize("detector", list(detectors.DETECTORS))
def test_recognize_returns_nothing_without_faces(classifier, detector):
  image = np.full((300, 400), 128, np.uint8)
  assert pipeline.recognize(image, classifier, detector) == []


def test_recognize_classifies_every_detected_face(classifier):
  image = np.full((400, 800, 3), 255, np.uint8)
  image[100:180, 200:280] = 0
  image[300:340, 600:640] = 0
  results = pipeline.recognize(image, classifier, DarkSquares())
  assert len(results) == 2
  for r in results:
    assert set(r.scores) == set(FER2013_CLASSES)
    assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert r.label == max(r.scores, key=r.scores.get)
    record = r.to_json()
    json.dumps(record)
    assert record["landmarks"] is None and len(record["box"]) == 4


def _matches(found, expected, optional):
  hits = [any(pipeline.iou(e, f) > 0.3 for f in found) for e in expected]
  false = [f for f in found
           if not any(pipeline.iou(e, f) > 0.3 for e in expected + optional)]
  return hits, false


# The group, the Santa (whom both original detectors miss) and the logo by
# default; the rest with -m slow.
FAST = ("faces/group.jpeg", "faces/surprised.jpeg", "no_face/non_face.jpg")


@pytest.mark.parametrize("name", [
    n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
    for n in FACES])
def test_default_detector_finds_every_visible_face_and_nothing_else(
    classifier, name):
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  image = predict.load_image(PHOTOS / name)
  results = pipeline.recognize(image, classifier)
  hits, false = _matches([r.box for r in results], FACES[name],
                         OPTIONAL.get(name, []))
  assert all(hits), f"missed {hits.count(False)} face(s)"
  assert not false, f"false faces at {false}"
  assert all(r.landmarks is not None for r in results)


# One portrait at four sizes; the face's box is MTCNN's on the full image.
RESOLUTION = {"240p": (195, 18, 54, 76), "480p": (394, 37, 103, 148),
              "720p": (584, 54, 159, 224), "1080p": (893, 103, 215, 305)}


@pytest.mark.parametrize("name", RESOLUTION)
def test_default_detector_finds_the_one_face_at_every_resolution(
    classifier, name):
  # Issue 32: at 480p-1080p a dark patch of the suit was a second face.
  path = PHOTOS.parent / "resolution" / f"obama-{name}.jpg"
  if not path.is_file():
    pytest.skip(f"{path} not present")
  results = pipeline.recognize(predict.load_image(path), classifier)
  assert [pipeline.iou(r.box, RESOLUTION[name]) > 0.5
          for r in results] == [True]


def _write(path: Path, image: np.ndarray, *params) -> Path:
  ok, data = cv2.imencode(path.suffix, image, list(params))
  assert ok
  path.write_bytes(data.tobytes())
  return path


NOISE = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
  """One file of every kind predict must handle (BGR, as OpenCV writes)."""
  d = tmp_path_factory.mktemp("in")
  noise = NOISE
  jpeg = _write(d / "noise.jpg", noise)
  truncated = d / "truncated.jpg"
  truncated.write_bytes(jpeg.read_bytes()[:len(jpeg.read_bytes()) // 2])
  (d / "empty.png").write_bytes(b"")
  (d / "text.png").write_text("not an image")
  huge = np.full((5200, 8000, 3), 200, np.uint8)  # 41.6 megapixels
  return {
      "jpeg": jpeg, "truncated": truncated, "empty": d / "empty.png",
      "text": d / "text.png", "missing": d / "missing.jpg",
      "grey": _write(d / "grey.png", noise[..., 0]),
      "deep": _write(d / "deep.png", noise.astype(np.uint16) * 257),
      "rgba": _write(d / "rgba.png", np.dstack([noise, noise[..., :1]])),
      "huge": _write(d / "huge.jpg", huge, cv2.IMWRITE_JPEG_QUALITY, 50),
  }


def test_load_image_reads_every_supported_kind(files):
  for kind in ("jpeg", "grey", "deep", "rgba", "huge"):
    image = predict.load_image(files[kind])
    assert image.dtype == np.uint8 and image.ndim == 3, kind
    assert image.shape[2] == 3, kind
  assert predict.load_image(files["huge"]).shape == (5200, 8000, 3)
  rgb = NOISE[..., ::-1]
  np.testing.assert_array_equal(predict.load_image(files["deep"]), rgb)
  np.testing.assert_array_equal(predict.load_image(files["rgba"]), rgb)
  np.testing.assert_array_equal(predict.load_image(files["grey"]),
                                np.repeat(NOISE[..., :1], 3, axis=2))


@pytest.mark.parametrize("kind,message", [
    ("truncated", "truncated JPEG"), ("empty", "empty file"),
    ("text", "not a readable image"), ("missing", "no such file")])
def test_load_image_says_what_is_wrong(files, kind, message):
  with pytest.raises(predict.ImageError, match=message) as e:
    predict.load_image(files[kind])
  assert str(files[kind]) in str(e.value)


def _declaring(png: bytes, width: int, height: int) -> bytes:
  """``png`` with its header saying width x height (CRC fixed)."""
  ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
  return (png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr))
          + png[33:])


def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(
    files, tmp_path, capsys, classifier):
  bomb = tmp_path / "bomb.png"
  bomb.write_bytes(_declaring(files["grey"].read_bytes(), 30000, 30000))
  with pytest.raises(predict.ImageError) as e:
    predict.load_image(bomb)
  assert str(e.value) == (
      f"{bomb}: declares 30000x30000 pixels, more than the limit of "
      f"{predict.MAX_PIXELS} (--max-pixels; a guard against decompression "
      "bombs)")
  # The limit is the caller's: 160x120 passes 19200 and not 19199.
  assert predict.load_image(files["jpeg"], 160 * 120).shape == (120, 160, 3)
  with pytest.raises(predict.ImageError, match="declares 160x120 pixels"):
    predict.load_image(files["jpeg"], 160 * 120 - 1)
  assert predict_command.run([str(files["jpeg"])], classifier,
                             max_pixels=160 * 120 - 1) == 1
  assert "more than the limit of 19199" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_only_regular_files_are_read_never_a_device_or_fifo(tmp_path):
  zero = tmp_path / "z.jpg"
  zero.symlink_to("/dev/zero")
  fifo = tmp_path / "f.jpg"
  os.mkfifo(fifo)  # Nothing ever writes: reading it would wait forever.
  with pytest.raises(predict.ImageError) as e:
    predict.load_image(zero)
  assert str(e.value) == (f"{zero}: a device, not a regular file; expected "
                          "an image file")
  with pytest.raises(predict.ImageError) as e:
    predict.load_image(fifo)
  assert str(e.value) == (f"{fifo}: a FIFO, not a regular file; expected an "
                          "image file")
  with pytest.raises(predict.ImageError, match="is a directory, not an image"):
    predict.load_image(tmp_path)


def test_predict_paths_reports_bad_files_and_runs_the_rest(files, classifier,
                                                            tmp_path):
  out = tmp_path / "out"
  paths = predict.expand_paths([files["jpeg"].parent, files["missing"]])
  assert files["missing"] in paths and files["grey"] in paths
  records = list(predict.predict_paths(paths, classifier, "auto", out))
  assert [Path(r["path"]) for r in records] == paths
  by_path = {Path(r["path"]): r for r in records}
  for kind in ("truncated", "empty", "text", "missing"):
    assert str(files[kind]) in by_path[files[kind]]["error"]
  for kind in ("jpeg", "grey", "deep", "rgba", "huge"):
    assert by_path[files[kind]]["faces"] == []
  for r in records:
    json.dumps(r)
  written = sorted(p.name for p in out.iterdir())
  assert written == ["deep.png", "grey.png", "huge.jpg", "noise.jpg",
                     "rgba.png"]
  assert cv2.imread(str(out / "huge.jpg")).shape == (5200, 8000, 3)


def test_run_fails_only_when_every_image_fails(files, classifier, capsys):
  assert predict_command.run([str(files["empty"]), str(files["grey"])],
                             classifier) == 0
  lines = capsys.readouterr().out.splitlines()
  assert [("error" in json.loads(line)) for line in lines] == [True, False]
  assert predict_command.run([str(files["empty"]), str(files["text"])],
                             classifier) == 1
  assert predict_command.run([str(files["empty"].parent / "nothing_here")],
                             classifier, "haar") == 1


def test_annotated_names_stay_unique(tmp_path):
  used = set()
  a = predict._annotated_path(tmp_path, Path("x/photo.JPG"), used)
  b = predict._annotated_path(tmp_path, Path("y/photo.JPG"), used)
  c = predict._annotated_path(tmp_path, Path("z/photo.gif"), used)
  assert [a.name, b.name, c.name] == ["photo.jpg", "photo_1.jpg", "photo.png"]


def test_predict_end_to_end_on_a_photo(classifier, tmp_path):
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  empty = tmp_path / "empty.jpg"
  empty.write_bytes(b"")
  photo = PHOTOS / "faces" / "astronaut.png"
  records = list(predict.predict_paths([photo, empty], classifier, "auto",
                                       tmp_path / "out"))
  face, = records[0]["faces"]
  assert pipeline.iou(face["box"], FACES["faces/astronaut.png"][0]) > 0.5
  assert face["label"] in FER2013_CLASSES
  assert set(face["landmarks"]) == set(align.LANDMARK_NAMES)
  assert "error" in records[1]
  annotated = cv2.imread(str(tmp_path / "out" / "astronaut.png"))
  original = cv2.imread(str(photo))
  assert annotated.shape == original.shape
  x, y, w, h = face["box"]
  # The box outline is drawn in green over the photo.
  assert (annotated[y + h // 2, x - 1:x + 2] != original[y + h // 2,
                                                         x - 1:x + 2]).any()
  assert tuple(annotated[y + h // 2, x]) == (0, 255, 0)


def test_main_rejects_an_unusable_run_dir_or_out_dir(tmp_path, capsys):
  image = _write(tmp_path / "a.png", np.zeros((10, 10, 3), np.uint8))
  assert predict_command.main(["--workdir", str(tmp_path / "run"), str(image)]) == 2
  assert str(tmp_path / "run") in capsys.readouterr().err
  assert predict_command.main(["--workdir", str(tmp_path / "run"), "--out",
                       str(image), str(image)]) == 2
  assert f"--out {image}" in capsys.readouterr().err


def test_main_requires_images(tmp_path):
  with pytest.raises(SystemExit) as e:
    predict_command.main(["--workdir", str(tmp_path)])
  assert e.value.code == 2


@pytest.mark.parametrize("box", [(10, 0, 60, 100),    # the whole height
                                 (150, 70, 50, 30)])  # bottom right corner
def test_labels_stay_inside_the_image(box):
  """A face at the image's edge (sad-baby.jpeg's reaches the bottom) keeps
  its label in sight: above the box, else inside its top."""
  image = np.zeros((100, 200, 3), np.uint8)
  face = pipeline.FaceResult(box=box, landmarks=None, label="surprise",
                             scores={"surprise": 0.87})
  out = predict.annotate(image, [face])
  green = np.all(out == (0, 255, 0), axis=-1)
  x, y, w, h = box
  outline = np.zeros_like(green)
  outline[y:y + h, x:x + w] = True
  outline[y + 1:y + h - 1, x + 1:x + w - 1] = False
  # The label's filled box: far more green than the box's outline.
  assert (green & ~outline).sum() > 300
  text = (np.abs(out.astype(int) - (0, 255, 0)).sum(-1) > 200) & (
      out.sum(-1) < 100)
  assert text[green.any(axis=1)].any()  # Dark text on the green fill.


def test_a_registered_detector_is_found_by_name(monkeypatch):
  """A new detector is a class and one entry in ``detectors.DETECTORS``."""
  seen = []

  class Corner:

    def detect(self, image):
      seen.append(image.shape)
      return [Face((1, 2, 10, 10), 0.9, None)]

  monkeypatch.setitem(detectors.DETECTORS, "corner",
                      detectors.DetectorSpec(Corner, (64,)))
  faces = pipeline.get_detector("corner").detect(
      np.zeros((128, 96, 3), np.uint8))
  assert seen == [(64, 48, 3)]  # Run on the copy with the longer side 64.
  assert [f.box for f in faces] == [(2, 4, 20, 20)]  # In the image's pixels.
  with pytest.raises(ValueError, match="auto, haar, mtcnn"):
    pipeline.get_detector("nope")
