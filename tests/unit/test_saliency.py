"""Grad-CAM and gradient saliency: where the evidence is, for every family."""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import pretrained
from ferjax.commands import predict as predict_command
from ferjax.config import base_config
from ferjax.models import MODEL_NAMES, create_model
from ferjax.models import saliency
from ferjax.recognition import align, overlay, pipeline, predict
from ferjax.recognition import classifier as classifier_lib
from ferjax.recognition.align import Face
from helpers import PHOTOS, DarkSquares

# Inputs each family takes at its smallest sensible size.
_SIDE = {"alexnet_tv": 64, "googlenet_tv": 64, "googlenet": 48,
         "googlenet_bn": 48, "alexnet": 48, "alexnet_bn": 48}
# One model per family runs by default; the others' maps are the same code.
_FAST = ("lenet5", "alexnet_bn", "vgg11_bn", "googlenet_bn", "lbp_linear")


def _striped(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
  """48x48 grey noise; only the top-left 24x24 quadrant says the class:
  vertical stripes for 0, horizontal for 1."""
  k1, k2 = jax.random.split(key)
  labels = jax.random.bernoulli(k1, 0.5, (n,)).astype(jnp.int32)
  x = 0.5 + 0.1 * jax.random.uniform(k2, (n, 48, 48, 3), minval=-1)
  vertical = jnp.tile((jnp.arange(24) % 4 < 2).astype(jnp.float32), (24, 1))
  patch = jnp.where(labels[:, None, None] == 1, vertical.T, vertical)
  return x.at[:, :24, :24, :].set(patch[..., None]), labels


@pytest.fixture(scope="module")
def trained():
  """LeNet-5 trained until it tells the stripes apart (a few seconds)."""
  model = create_model("lenet5", num_classes=2)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))
  opt = optax.adam(3e-3)

  @jax.jit
  def step(variables, opt_state, key):
    x, y = _striped(key, 64)

    def loss(v):
      return optax.softmax_cross_entropy_with_integer_labels(
          model.apply(v, x), y).mean()

    grads = jax.grad(loss)(variables)
    updates, opt_state = opt.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state

  opt_state = opt.init(variables)
  for i in range(60):
    variables, opt_state = step(variables, opt_state, jax.random.key(i + 10))
  x, y = _striped(jax.random.key(999), 64)
  assert (model.apply(variables, x).argmax(-1) == y).mean() == 1.0
  return model, variables, x, y


def _mass_in_quadrant(maps: jax.Array) -> np.ndarray:
  maps = np.asarray(maps)
  return maps[:, :24, :24].sum((1, 2)) / maps.sum((1, 2))


def test_grad_cam_falls_on_the_region_that_carries_the_class(trained):
  model, variables, x, y = trained
  cam = saliency.explain(model, variables, x, y)
  assert cam.method == "grad_cam" and cam.layer == "Conv_1"
  assert cam.maps.shape == (64, 48, 48)
  mass = _mass_in_quadrant(cam.maps)
  # The quadrant is a quarter of the image.
  assert mass.min() > 0.6, mass.min()
  np.testing.assert_array_equal(cam.classes, y)
  # Default: each image's top class, which the model gets right here.
  np.testing.assert_array_equal(saliency.explain(model, variables,
                                                 x).classes, y)


def test_gradient_saliency_also_prefers_the_region(trained):
  model, variables, x, y = trained
  grad = saliency.gradient_saliency(model, variables, x, y)
  assert grad.method == "gradient"
  assert _mass_in_quadrant(grad.maps).mean() > 0.4


def test_an_untrained_model_is_not_drawn_to_the_region():
  """The region test can fail: random weights spread their map evenly."""
  model = create_model("lenet5", num_classes=2)
  x, y = _striped(jax.random.key(999), 64)
  variables = model.init(jax.random.key(0), x)
  mass = _mass_in_quadrant(saliency.explain(model, variables, x, y).maps)
  assert mass.mean() < 0.6


@pytest.mark.parametrize("name", [
    n if n in _FAST else pytest.param(n, marks=pytest.mark.slow)
    for n in MODEL_NAMES])
def test_every_family_has_a_finite_map_of_its_input_size(name):
  side = _SIDE.get(name, 32)
  model = create_model(name, num_classes=7)
  x = jax.random.uniform(jax.random.key(1), (2, side, side, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  result = saliency.explain(model, variables, x)
  assert result.maps.shape == (2, side, side)
  assert np.isfinite(np.asarray(result.maps)).all()
  assert float(result.maps.min()) >= 0 and float(result.maps.max()) <= 1
  expected = ("gradient" if name == "lbp_linear" else "grad_cam")
  assert result.method == expected
  if "googlenet" in name:
    assert result.layer in ("inception_5b", "inception5b")


def test_a_fusion_model_falls_back_to_the_input_gradient():
  fusion = base_config().model.fusion.to_dict()
  fusion.update(features=("lbp",), mode="late")
  model = create_model("lenet5", num_classes=7, fusion=fusion)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  result = saliency.explain(model, variables, x)
  assert result.method == "gradient" and result.layer is None
  assert result.maps.shape == (2, 32, 32)
  assert float(result.maps.max()) == 1.0  # The CNN's pixels do matter.


def test_a_crop_map_goes_back_where_the_crop_came_from():
  """A map hot in the crop's top-left quadrant is hot over the same part
  of the face in the image, through the eye-levelling rotation too."""
  left, right = (90, 80), (150, 100)  # tilted by 18.4 degrees
  face = Face((70, 40, 100, 100), 0.9,
              {"left_eye": left, "right_eye": right})
  image = np.zeros((240, 320, 3), np.uint8)
  image[:, :, 0] = np.arange(320)[None, :] // 2  # x, readable in the crop
  image[:, :, 1] = np.arange(240)[:, None]  # y
  crop = align.align_face(image, face, (48, 48, 3), margin=0.1)
  values = np.zeros((48, 48), np.float32)
  values[4:20, 4:20] = 1
  placed = align.crop_to_image(values, face, image.shape[:2], margin=0.1)
  assert placed.shape == (240, 320)
  ys, xs = np.nonzero(placed > 0.5)
  # The hot pixels in the image are where the hot crop pixels were cut from.
  np.testing.assert_allclose(
      [xs.mean(), ys.mean()],
      [crop[4:20, 4:20, 0].mean() * 2, crop[4:20, 4:20, 1].mean()], atol=3)
  assert placed[:, 150:].max() == 0 and placed[150:].max() == 0
  assert placed.sum() == pytest.approx(values.sum() * (120 / 48) ** 2,
                                       rel=0.1)


def test_classifier_explains_each_face_of_its_label(classifier):
  crops = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 1), np.uint8)
  maps = classifier.explain(crops, [0, 3, 6])
  assert maps.shape == (3, 48, 48) and maps.dtype == np.float32
  assert np.isfinite(maps).all() and 0.9 < maps.max() <= 1.0
  assert not np.allclose(maps[0], classifier.explain(crops, [1, 3, 6])[0])


def test_explain_overlays_the_heat_inside_the_face_only(classifier, tmp_path):
  image = np.full((300, 400, 3), 230, np.uint8)
  image[100:190, 150:240] = 0
  results = pipeline.recognize(image, classifier, DarkSquares())
  heat = overlay.face_heat(image, results, classifier)
  assert heat.shape == (300, 400) and heat.max() > 0.5
  # Inside the face's box only: not on the crop's 10% margin.
  (face,) = results
  assert face.box == (150.0, 100.0, 90.0, 90.0)
  assert heat[100:190, 150:240].max() > 0.5
  outside = heat.copy()
  outside[100:190, 150:240] = 0
  assert outside.max() == 0
  plain = predict.annotate(image, results)
  explained = predict.annotate(image, results, heat)
  changed = np.abs(plain.astype(int) - explained).sum(-1) > 0
  assert changed[100:190, 150:240].any() and not changed[:85].any()


def test_predict_explain_needs_an_output_and_one_model(tmp_path, capsys):
  image = tmp_path / "a.png"
  cv2.imwrite(str(image), np.zeros((10, 10, 3), np.uint8))
  with pytest.raises(SystemExit) as e:
    predict_command.main(["--explain", str(image)])
  assert e.value.code == 2
  assert "--out" in capsys.readouterr().err
  workdir = str(pretrained.path())
  assert predict_command.main([
      "--explain", "--out", str(tmp_path / "out"), "--workdir", workdir,
      "--workdir", workdir, str(image)]) == 2
  assert "ensemble" in capsys.readouterr().err


def test_predict_explain_on_a_shared_photo(tmp_path):
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  photo = PHOTOS / "faces" / "angry.jpg"
  classifier = classifier_lib.load_classifier()
  records = list(predict.predict_paths([photo], classifier, "auto",
                                       tmp_path / "out", explain=True))
  (face,) = records[0]["faces"]
  annotated = cv2.imread(str(tmp_path / "out" / "angry.jpg"))
  plain = cv2.imread(str(photo))
  x, y, w, h = face["box"]
  inside = np.abs(annotated[y + 10:y + h - 10, x + 10:x + w - 10].astype(int)
                  - plain[y + 10:y + h - 10, x + 10:x + w - 10]).sum(-1)
  assert (inside > 30).mean() > 0.05  # Coloured by the map.
  # Away from the face only JPEG re-encoding differs.
  above = np.abs(annotated[:y - h // 4].astype(int) - plain[:y - h // 4])
  assert above.mean() < 3 and (inside > 30).mean() > 10 * (above.sum(
      -1) > 30).mean()


def test_the_mean_saliency_figure_shows_each_mean_face_unhidden():
  from ferjax.evaluate import saliency_plots  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  faces = rng.integers(0, 256, (3, 48, 48)).astype(np.float32)
  maps = rng.uniform(0, 1, (3, 8, 8)).astype(np.float32)
  fig = saliency_plots.class_saliency_figure({
      "class_names": ["a", "b", "c"], "mean_faces": faces, "maps": maps,
      "counts": [5, 0, 7], "method": "grad_cam", "layer": "Conv_1",
      "split": "test", "step": 3})
  panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
  assert len(panels) == 6
  above, below = panels[:3], panels[3:]
  assert [ax.get_title() for ax in above] == ["a (n=5)", "b (n=0)",
                                              "c (n=7)"]
  # Above: the face alone; below: the face, the map at MAP_ALPHA, a contour.
  (face,) = above[0].get_images()
  np.testing.assert_array_equal(face.get_array(), faces[0])
  assert [i.get_alpha() for i in below[0].get_images()] == [
      None, saliency_plots.MAP_ALPHA]
  assert below[0].collections and not above[0].collections
  assert not above[1].get_images()  # No examples of class b.
