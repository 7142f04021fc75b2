"""Face detectors: the MTCNN port's pieces and its agreement with the
original implementation, and the Haar cascade detector."""

import hashlib
import json
import math
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax.recognition import haar, mtcnn, pipeline
from ferjax.recognition.align import LANDMARK_NAMES

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "photos"
REFERENCE = Path(__file__).parents[1] / "data" / "mtcnn_reference.json"


@pytest.fixture(scope="module")
def detector() -> mtcnn.MTCNN:
  # The pipeline's instance, so its compiled nets are shared across tests.
  return pipeline.get_detector("mtcnn").detector


def read_rgb(path: Path) -> np.ndarray:
  return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR),
                      cv2.COLOR_BGR2RGB)


def test_prelu_scales_negative_inputs_per_channel():
  layer = mtcnn.PReLU()
  x = jnp.asarray([[[[-2.0, 3.0], [4.0, -1.0]]]])
  variables = {"params": {"alpha": jnp.asarray([0.5, 0.25])}}
  np.testing.assert_allclose(layer.apply(variables, x),
                             [[[[-1.0, 3.0], [4.0, -0.25]]]])


def test_scale_pyramid_matches_the_reference_formula():
  scales = mtcnn.scale_pyramid(853, 1280, 20, 0.709)
  # log(853 / 12) / -log(0.709) = 12.4 levels, minus one, rounded.
  assert len(scales) == 11
  np.testing.assert_allclose(scales, 0.6 * 0.709 ** np.arange(11))
  assert min(853, 1280) * scales[-1] >= 12


def test_nms_lets_suppressed_boxes_suppress_others():
  # b overlaps a, c overlaps only b: greedy NMS would keep c; the
  # reference's NMS drops it because b, although dropped, outranks it.
  boxes = np.asarray([[0, 0, 10, 10, 0.9], [4, 0, 14, 10, 0.8],
                      [8, 0, 18, 10, 0.7]], float)
  kept = mtcnn.nms(boxes[::-1].copy(), 0.3)
  np.testing.assert_array_equal(kept, boxes[:1])


def test_nms_min_overlap_drops_boxes_inside_bigger_ones():
  boxes = np.asarray([[0, 0, 100, 100, 0.9], [10, 10, 30, 30, 0.8]], float)
  assert len(mtcnn.nms(boxes, 0.7, "union")) == 2
  assert len(mtcnn.nms(boxes, 0.7, "min")) == 1
  with pytest.raises(ValueError, match="method"):
    mtcnn.nms(boxes, 0.7, "max")


def test_square_keeps_the_centre_and_the_longer_side():
  boxes = np.asarray([[10, 20, 30, 80, 0.5]], float)
  out = mtcnn.square(boxes)
  np.testing.assert_allclose(out, [[-10, 20, 50, 80, 0.5]])
  assert boxes[0, 0] == 10  # input untouched


def test_calibrate_moves_edges_by_offsets_times_size_plus_one():
  boxes = np.asarray([[10, 20, 29, 59, 0.5]], float)  # 20 x 40 with the +1
  out = mtcnn.calibrate(boxes, np.asarray([[0.1, -0.1, 0.5, 0.25]]))
  np.testing.assert_allclose(out, [[12, 16, 39, 69, 0.5]])


def test_resize_area_averages_the_covered_input():
  rng = np.random.default_rng(0)
  image = rng.random((10, 9, 2)).astype(np.float32)
  halved = mtcnn.resize_area(image[:, :8], 5, 4)
  blocks = image[:, :8].reshape(5, 2, 4, 2, 2).mean(axis=(1, 3))
  np.testing.assert_allclose(halved, blocks, rtol=1e-5)
  # 9 -> 4 columns: each output covers 2.25 inputs; check one by hand.
  out = mtcnn.resize_area(image, 10, 4)
  expected = (image[:, 2] * 0.75 + image[:, 3] + image[:, 4] * 0.5) / 2.25
  np.testing.assert_allclose(out[:, 1], expected, rtol=1e-5)


def test_crop_and_resize_samples_like_tensorflow():
  # Bilinear sampling reproduces a linear image exactly, so each patch
  # value tells where it was sampled.
  h, w = 40, 50
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  image = np.stack([xs, ys], axis=-1)
  box = np.asarray([[5.0, 8.0, 25.0, 30.0, 1.0]])
  patch = mtcnn.crop_and_resize(image, box, 12)
  steps = np.arange(12) / 11
  want_x = (5 / w + (25 - 5) / w * steps) * (w - 1)
  want_y = (8 / h + (30 - 8) / h * steps) * (h - 1)
  np.testing.assert_allclose(patch[0, 0, :, 0], want_x, atol=1e-4)
  np.testing.assert_allclose(patch[0, :, 0, 1], want_y, atol=1e-4)
  outside = mtcnn.crop_and_resize(image + 1, np.asarray([[-30.0, -30, 10, 10,
                                                          1]]), 12)
  assert (outside[0, 0] == 0).all() and (outside[0, -1, -1] > 0).all()


@pytest.mark.parametrize("shape", [(151, 203), (70, 49), (251, 250)])
def test_tiled_pnet_equals_pnet_on_the_whole_image(detector, shape):
  # Odd sizes exercise the 'SAME' pooling edge that tiles must reproduce;
  # the shapes use the 16-, 32- and 64-output tiles.
  rng = np.random.default_rng(1)
  level = rng.uniform(-1, 1, (*shape, 3)).astype(np.float32)
  (offsets, probs), = detector.pnet_maps([level])
  variables = mtcnn.load_variables("pnet")
  whole_offsets, whole_probs = jax.jit(mtcnn.PNet().apply)(variables,
                                                           level[None])
  assert probs.shape == whole_probs.shape[1:3]
  np.testing.assert_allclose(probs, whole_probs[0, :, :, 1], atol=1e-5)
  np.testing.assert_allclose(offsets, whole_offsets[0], atol=1e-5)


def test_pnet_tiles_fit_the_level_and_batches_pad_to_powers_of_four():
  # One 16-tile; one 32-tile (cheaper than four 16-tiles); a 71 x 97
  # output map in 16-tiles (35 of them cost less than four 64-tiles); four
  # 64-tiles for 121 x 121 (sixteen 32-tiles would cost a little more).
  assert [mtcnn.tile_size(h, w) for h, w in
          ((41, 30), (70, 49), (151, 203), (251, 250))] == [16, 32, 16, 64]
  assert mtcnn._chunks(9, 16) == [(4, 4), (4, 4), (1, 1)]
  assert mtcnn._chunks(15, 16) == [(15, 16)]
  assert mtcnn._chunks(40, 16) == [(16, 16), (16, 16), (4, 4), (4, 4)]
  assert mtcnn._chunks(3, 64) == [(3, 4)]
  tiles, valid, origins = mtcnn.pnet_tiles(np.ones((151, 203, 3)), 64)
  assert tiles.shape == (4, 138, 138, 3) and len(origins) == 4
  assert valid.tolist() == [[136, 136], [136, 73], [21, 136], [21, 73]]


def test_nets_run_any_batch_in_a_few_shapes(detector):
  detector._nets["onet"]._clear_cache()
  for n in (1, 3, 5, 16, 17, 40):
    offsets, marks, probs = detector._run(
        "onet", np.zeros((n, 48, 48, 3), np.float32))
    assert offsets.shape == (n, 4) and probs.shape == (n, 2)
  # Batches of 1, 4 and 16 only.
  assert detector._nets["onet"]._cache_size() == 3


def test_load_variables_fits_the_modules():
  for net, size, module in (("rnet", 24, mtcnn.RNet()),
                            ("onet", 48, mtcnn.ONet())):
    variables = mtcnn.load_variables(net)
    outputs = jax.jit(module.apply)(variables, jnp.zeros((2, size, size, 3)))
    assert outputs[-1].shape == (2, 2)
    np.testing.assert_allclose(outputs[-1].sum(axis=1), 1.0, rtol=1e-5)


def test_load_variables_names_a_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "pnet.lz4")):
    mtcnn.load_variables("pnet", tmp_path)


def test_mtcnn_finds_nothing_in_smooth_images(detector):
  ys, xs = np.mgrid[0:120, 0:160]
  gradient = np.stack([xs, ys, xs + ys], axis=-1).astype(np.uint8)
  assert detector.detect(gradient) == []
  assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []


def test_mtcnn_rejects_non_rgb_input(detector):
  with pytest.raises(ValueError, match="uint8 RGB"):
    detector.detect(np.zeros((20, 20), np.uint8))
  with pytest.raises(ValueError, match="uint8 RGB"):
    detector.detect(np.zeros((20, 20, 3), np.float32))


def test_load_cascade_names_a_missing_file():
  with pytest.raises(FileNotFoundError, match="no_such_cascade.xml"):
    haar.load_cascade("no_such_cascade.xml")


def test_haar_finds_nothing_in_a_blank_image():
  assert haar.HaarDetector().detect(np.full((200, 300, 3), 200,
                                            np.uint8)) == []


def _photo(name: str) -> Path:
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  return PHOTOS / name


REFERENCE_IMAGES = json.loads(REFERENCE.read_text())["images"]
# One face, four faces and none by default; the larger photos with -m slow.
FAST = ("faces/astronaut.png", "faces/group.jpeg", "no_face/non_face.jpg")


@pytest.mark.parametrize("name", [
    n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
    for n in REFERENCE_IMAGES])
def test_port_matches_the_original_mtcnn_on_the_shared_photos(detector, name):
  """tests/data/MTCNN_REFERENCE.md says how the reference was made."""
  path, entry = _photo(name), REFERENCE_IMAGES[name]
  assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], (
      f"{path} differs from the photo the reference was computed on")
  faces = detector.detect(read_rgb(path))
  assert len(faces) == len(entry["faces"])
  for ref, raw in zip(entry["faces"], entry["raw"], strict=True):
    ref_box = (raw[0], raw[1], raw[2] - raw[0], raw[3] - raw[1])
    face = max(faces, key=lambda f, b=ref_box: pipeline.iou(f.box, b))
    assert pipeline.iou(face.box, ref_box) >= 0.9
    assert face.score == pytest.approx(ref["confidence"], abs=1e-3)
    for i, key in enumerate(LANDMARK_NAMES):
      x, y = face.landmarks[key]
      assert math.dist((x, y), ref["keypoints"][key]) <= 3.0, key
      # The unrounded outputs agree far more closely than required.
      assert math.dist((x, y), (raw[5 + i], raw[10 + i])) <= 0.5, key
    np.testing.assert_allclose(
        [face.box[0], face.box[1], face.box[0] + face.box[2],
         face.box[1] + face.box[3]], raw[:4], atol=0.5)


def test_reference_covers_every_shared_photo():
  photos = _photo("faces").parent
  names = sorted(str(p.relative_to(photos)) for p in photos.glob("*/*")
                 if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
  assert names == sorted(REFERENCE_IMAGES)


def test_haar_finds_faces_with_eyes_on_the_shared_photos():
  image = read_rgb(_photo("faces/astronaut.png"))
  faces = haar.HaarDetector().detect(image)
  assert len(faces) == 1
  x, y, w, h = faces[0].box
  # The face is the one MTCNN's reference found.
  assert pipeline.iou(faces[0].box, (182, 64, 83, 107)) > 0.4
  left, right = faces[0].landmarks["left_eye"], faces[0].landmarks["right_eye"]
  assert x < left[0] < x + w / 2 < right[0] < x + w
  assert y < left[1] < y + h / 2 and y < right[1] < y + h / 2
  assert haar.HaarDetector().detect(
      read_rgb(PHOTOS / "no_face" / "non_face.jpg")) == []
