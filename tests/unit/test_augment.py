"""Tests of the on-device augmentation ops in ferjax.data.augment."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ferjax.data import augment as aug

N, H, W, C = 8, 12, 10, 1


@pytest.fixture(scope="module")
def images():
  return jax.random.uniform(jax.random.key(0), (N, H, W, C), jnp.float32)


FULL_SPEC = {"crop": {"padding": 2, "mode": "pad"}, "flip": True,
             "rotation": 10.0, "brightness": 0.2, "contrast": 0.2,
             "erasing": {"p": 0.5, "area": (0.05, 0.1)}}


def _jit(op, **kwargs):
  """Compiles once per op: eager vmapped ops compile every primitive anew."""
  return jax.jit(functools.partial(op, **kwargs))


RANDOM_OPS = {
    "crop_pad": _jit(aug.random_crop, padding=3),
    "crop_zero": _jit(aug.random_crop, padding=3,
                                   pad_mode="zero"),
    "crop_resize": _jit(aug.random_crop, mode="resize",
                                     scale=(0.3, 0.9)),
    "flip": _jit(aug.random_flip),
    "rotation": _jit(aug.random_rotation, max_degrees=30.0),
    "colour": _jit(aug.brightness_contrast, brightness=0.4,
                                contrast=0.4),
    "erasing": _jit(aug.random_erasing, p=0.5),
    "augment": _jit(aug.augment, cfg=FULL_SPEC),
}


@pytest.mark.parametrize("name", sorted(RANDOM_OPS))
def test_op_is_reproducible_keyed_and_shape_preserving(name, images):
  op = RANDOM_OPS[name]
  out = op(jax.random.key(1), images)
  assert out.shape == images.shape and out.dtype == images.dtype
  np.testing.assert_array_equal(out, op(jax.random.key(1), images))
  assert not np.array_equal(out, op(jax.random.key(2), images))
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("name", ["crop_pad", "crop_resize", "flip",
                                  "rotation", "colour", "erasing"])
def test_randomness_is_per_image(name, images):
  same = jnp.broadcast_to(images[:1], images.shape)
  out = np.asarray(RANDOM_OPS[name](jax.random.key(3), same))
  assert any(not np.array_equal(out[0], out[i]) for i in range(1, N))


def test_flip_twice_with_same_key_is_identity(images):
  key = jax.random.key(4)
  once = RANDOM_OPS["flip"](key, images)
  np.testing.assert_array_equal(RANDOM_OPS["flip"](key, once), images)
  for i in range(N):
    assert (np.array_equal(once[i], images[i])
            or np.array_equal(once[i], images[i, :, ::-1]))


@pytest.mark.parametrize("pad_mode", ["reflect", "zero"])
def test_crop_without_padding_is_identity(images, pad_mode):
  crop = _jit(aug.random_crop, padding=0, pad_mode=pad_mode)
  out = crop(jax.random.key(5), images)
  np.testing.assert_array_equal(out, images)


def test_zero_padded_crop_is_a_window_of_the_padded_image(images):
  p = 3  # As in RANDOM_OPS["crop_zero"].
  out = np.asarray(RANDOM_OPS["crop_zero"](jax.random.key(6), images))
  padded = np.pad(np.asarray(images), ((0, 0), (p, p), (p, p), (0, 0)))
  for i in range(N):
    windows = [padded[i, y:y + H, x:x + W]
               for y in range(2 * p + 1) for x in range(2 * p + 1)]
    assert any(np.array_equal(out[i], window) for window in windows)


def test_resize_crop_of_the_whole_image_is_identity(images):
  crop = _jit(aug.random_crop, mode="resize", scale=(1.0, 1.0),
              ratio=(W / H, W / H))
  out = crop(jax.random.key(7), images)
  np.testing.assert_allclose(out, images, atol=1e-4)


def test_rotation_by_zero_is_identity(images):
  out = _jit(aug.random_rotation, max_degrees=0.0)(jax.random.key(8), images)
  np.testing.assert_allclose(out, images, atol=1e-6)


def test_rotation_keeps_a_centred_disc_in_place():
  yy, xx = np.mgrid[:21, :21]
  disc = ((yy - 10) ** 2 + (xx - 10) ** 2 <= 36).astype(np.float32)
  batch = jnp.asarray(np.broadcast_to(disc[None, ..., None], (4, 21, 21, 1)))
  rotate = _jit(aug.random_rotation, max_degrees=180.0)
  out = np.asarray(rotate(jax.random.key(9), batch))
  assert not np.allclose(out, batch)  # Edges do move a little.
  np.testing.assert_allclose(out[:, 8:13, 8:13], 1.0, atol=1e-5)
  np.testing.assert_allclose(out[:, :2, :2], 0.0, atol=1e-5)


def test_brightness_only_scales_each_image_within_range(images):
  brighten = _jit(aug.brightness_contrast, brightness=0.3)
  dim = np.asarray(images) * 0.5
  out = np.asarray(brighten(jax.random.key(10), dim))
  for i in range(N):
    factor = out[i].sum() / dim[i].sum()
    assert 0.7 <= factor <= 1.3
    np.testing.assert_allclose(out[i], dim[i] * factor, atol=1e-5)
  assert np.ptp(out.sum(axis=(1, 2, 3)) / dim.sum(axis=(1, 2, 3))) > 0.01


def test_colour_with_zero_strength_is_identity(images):
  no_change = _jit(aug.brightness_contrast, brightness=0.0, contrast=0.0)
  out = no_change(jax.random.key(11), images)
  np.testing.assert_allclose(out, images, atol=1e-6)


def test_erasing_with_p_zero_is_identity(images):
  out = _jit(aug.random_erasing, p=0.0)(jax.random.key(12), images)
  np.testing.assert_array_equal(out, images)


def test_erasing_with_p_one_erases_one_rectangle_per_image():
  ones = jnp.ones((16, 32, 32, 1))
  area = (0.05, 0.2)
  erase = _jit(aug.random_erasing, p=1.0, area=area)
  out = np.asarray(erase(jax.random.key(13), ones))
  for image in out[..., 0]:
    ys, xs = np.nonzero(image == 0)
    assert ys.size > 0
    box = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert np.all(box == 0)  # One solid rectangle, nothing else erased.
    h, w = box.shape
    slack = (h + w) / 2 + 1  # Sides are rounded to whole pixels.
    assert area[0] * 32 * 32 - slack <= ys.size <= area[1] * 32 * 32 + slack


def test_augment_with_empty_or_disabled_config_is_identity(images):
  key = jax.random.key(14)
  for cfg in (None, {}, {"crop": None, "flip": False, "rotation": 0.0,
                         "brightness": None, "contrast": 0, "erasing": 0.0}):
    np.testing.assert_array_equal(aug.augment(key, images, cfg), images)


def test_augment_accepts_config_dict_under_jit(images):
  # Equal jaxprs mean the same ops with the same settings, without the cost
  # of compiling the full pipeline again.
  def jaxpr(cfg):
    return str(jax.make_jaxpr(functools.partial(aug.augment, cfg=cfg))(
        jax.random.key(15), images))

  from_config = jaxpr(ml_collections.ConfigDict(FULL_SPEC))
  assert from_config == jaxpr(FULL_SPEC)
  assert from_config != jaxpr({**FULL_SPEC, "rotation": 11.0})


def test_augment_keeps_other_ops_randomness_when_one_is_toggled():
  key = jax.random.key(16)
  grey = jnp.full((N, H, W, C), 0.5)
  erase = _jit(aug.augment, cfg={"erasing": 1.0})(key, grey)
  dim_and_erase = _jit(aug.augment, cfg={"brightness": 0.5, "erasing": 1.0})(
      key, grey)
  assert not np.array_equal(erase, dim_and_erase)
  np.testing.assert_array_equal(erase == 0, dim_and_erase == 0)
  assert 0 < np.mean(erase == 0) < 0.5


@pytest.mark.parametrize("cfg,bad", [
    ({"flip": True, "hue": 0.1}, "'hue'"),
    ({"crop": {"padding": 4, "size": 40}}, "crop.'size'"),
    ({"erasing": {"p": 0.5, "colour": 1}}, "erasing.'colour'"),
])
def test_augment_rejects_unknown_keys_by_name(images, cfg, bad):
  with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
    aug.augment(jax.random.key(17), images, cfg)


def test_ten_crop_views(images):
  crops = np.asarray(aug.ten_crop(images, (8, 6)))
  x = np.asarray(images)
  assert crops.shape == (10, N, 8, 6, C)
  np.testing.assert_array_equal(crops[0], x[:, :8, :6])
  np.testing.assert_array_equal(crops[1], x[:, :8, -6:])
  np.testing.assert_array_equal(crops[2], x[:, -8:, :6])
  np.testing.assert_array_equal(crops[3], x[:, -8:, -6:])
  np.testing.assert_array_equal(crops[4], x[:, 2:10, 2:8])
  np.testing.assert_array_equal(crops[5:], crops[:5, :, :, ::-1])


def test_flip_views_are_the_image_then_its_mirror(images):
  views = np.asarray(aug.flip_views(images))
  x = np.asarray(images)
  assert views.shape == (2, *x.shape)
  np.testing.assert_array_equal(views[0], x)
  np.testing.assert_array_equal(views[1], x[:, :, ::-1])


def test_ten_crop_rejects_a_crop_larger_than_the_image(images):
  with pytest.raises(ValueError, match="does not fit"):
    aug.ten_crop(images, H + 1)
