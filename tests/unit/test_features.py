"""ferjax.features against scikit-image's LBP and OpenCV's Gabor kernels."""

import math
import pathlib

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ferjax import features
from ferjax.features import gabor
from ferjax.models import fusion

skimage_feature = pytest.importorskip(
    "skimage.feature", reason="scikit-image is a test-only dependency "
    "(pip install -e '.[test]')")

FER_TEST = (pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"
            / "fer2013" / "test")
# (points, radius): axis-aligned integer samples, fractional radii, many
# points (default and ror only up to 16 points: 2**P codes).
OPERATORS = [(8, 1.0), (8, 2.0), (4, 1.5), (16, 2.0), (24, 3.0)]


def _bilinear_neighbours(image: np.ndarray, points: int,
                         radius: float) -> np.ndarray:
  """(H, W, P) float64 neighbours, written independently of ferjax."""
  angles = 2 * np.pi * np.arange(points) / points
  rows, cols = np.mgrid[:image.shape[0], :image.shape[1]]
  padded = np.pad(image.astype(np.float64), 1 + math.ceil(radius))
  off = 1 + math.ceil(radius)
  out = []
  for rp, cp in zip(np.round(-radius * np.sin(angles), 5),
                    np.round(radius * np.cos(angles), 5)):
    r, c = rows + rp + off, cols + cp + off
    r0, c0 = np.floor(r).astype(int), np.floor(c).astype(int)
    dr, dc = r - r0, c - c0
    r1, c1 = np.ceil(r).astype(int), np.ceil(c).astype(int)
    top = (1 - dc) * padded[r0, c0] + dc * padded[r0, c1]
    bottom = (1 - dc) * padded[r1, c0] + dc * padded[r1, c1]
    out.append((1 - dr) * top + dr * bottom)
  return np.stack(out, axis=-1)


def _assert_codes_match(images: np.ndarray, points: int, radius: float,
                        method: str) -> int:
  """Equal codes except where a neighbour is within float32 rounding of the
  centre (a tie that float32 and float64 may break differently); returns
  the number of such mismatches after checking each one is such a tie."""
  got = np.asarray(features.lbp_codes(jnp.asarray(images, jnp.float32),
                                      points=points, radius=radius,
                                      method=method))
  mismatches = 0
  for image, codes in zip(images, got):
    want = skimage_feature.local_binary_pattern(image, points, radius, method)
    bad = np.argwhere(want != codes)
    if len(bad):
      gaps = np.abs(_bilinear_neighbours(image, points, radius)
                    - image[..., None].astype(np.float64)).min(axis=-1)
      for r, c in bad:
        assert gaps[r, c] <= 1e-4 * (1 + abs(float(image[r, c]))), (
            f"{method} P={points} R={radius}: code {codes[r, c]} != "
            f"{want[r, c]} at ({r}, {c}), not a float32 tie "
            f"(gap {gaps[r, c]})")
      mismatches += len(bad)
  return mismatches


@pytest.mark.parametrize("method,points,radius", [
    (m, p, r) for m in features.LBP_METHODS for p, r in OPERATORS
    if p <= 16 or m not in ("default", "ror")])
def test_lbp_equals_scikit_image_on_random_images(method, points, radius):
  images = np.random.default_rng(points).integers(0, 256, (3, 23, 30),
                                                  np.uint8)
  mismatches = _assert_codes_match(images, points, radius, method)
  assert mismatches <= 0.001 * images.size


def test_lbp_ties_on_flat_images_follow_greater_or_equal():
  """A flat image is all ties: every neighbour counts as >= the centre,
  except beyond the border, where scikit-image reads zeros."""
  images = np.full((1, 9, 9), 100, np.uint8)
  assert _assert_codes_match(images, 8, 1.0, "uniform") == 0
  codes = np.asarray(features.lbp_codes(jnp.asarray(images, jnp.float32),
                                        points=8, radius=1.0,
                                        method="uniform"))
  assert (codes[0, 1:-1, 1:-1] == 8).all()
  assert (codes[0, 0, 1:-1] != 8).all()


def _fer_faces(count: int) -> np.ndarray:
  paths = sorted(FER_TEST.glob("*/*.jpg"))[::500][:count]
  return np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])


@pytest.mark.parametrize("method", features.LBP_METHODS)
def test_lbp_equals_scikit_image_on_real_faces(method):
  if not FER_TEST.is_dir():
    pytest.skip(f"{FER_TEST} not present")
  faces = _fer_faces(4)
  assert faces.shape[1:] == (48, 48)
  total = sum(_assert_codes_match(faces, p, r, method)
              for p, r in [(8, 1.0), (8, 2.5), (12, 1.5)])
  assert total <= 0.001 * faces.size * 3


def test_num_codes_bounds_every_method():
  images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (2, 20, 20)),
                       jnp.float32)
  for method in features.LBP_METHODS:
    codes = features.lbp_codes(images, points=8, radius=1.0, method=method)
    assert codes.dtype == jnp.int32
    assert 0 <= int(codes.min())
    assert int(codes.max()) < features.num_codes(8, method)
  with pytest.raises(ValueError, match="LBP method"):
    features.num_codes(8, "var")


def test_cell_histograms_are_per_cell_distributions():
  codes = jnp.asarray(np.random.default_rng(2).integers(0, 10, (2, 10, 7)))
  hist = np.asarray(features.cell_histograms(codes, num_bins=10, grid=(3, 2)))
  assert hist.shape == (2, 3, 2, 10)
  np.testing.assert_allclose(hist.sum(-1), 1.0, rtol=1e-6)
  # Cell (1, 1): rows 4..6 (r * 3 // 10 == 1), columns 4..6.
  want = np.bincount(np.asarray(codes)[0, 4:7, 4:7].ravel(), minlength=10)
  np.testing.assert_allclose(hist[0, 1, 1], want / 9, rtol=1e-6)
  with pytest.raises(ValueError, match="cell grid"):
    features.cell_histograms(codes, num_bins=10, grid=(11, 2))


@pytest.mark.parametrize("ksize,sigma,theta,lambd,gamma,psi", [
    ((9, 9), 2.0, 0.0, 4.0, 0.5, 0.0),
    ((9, 9), 2.0, math.pi / 4, 4.0, 0.5, math.pi / 2),
    ((8, 8), 3.0, 1.2, 6.0, 0.8, 0.3),
    ((7, 12), 1.5, 2.0, 3.0, 1.0, -0.7),
    ((31, 31), 6.0, 3.0, 10.0, 0.3, 1.0),
    ((4, 5), 1.0, 0.5, 2.0, 2.0, 0.0),
])
def test_gabor_kernels_equal_opencv(ksize, sigma, theta, lambd, gamma, psi):
  want = cv2.getGaborKernel(ksize, sigma, theta, lambd, gamma, psi,
                            ktype=cv2.CV_64F)
  got = features.gabor_kernel(ksize, sigma, theta, lambd, gamma, psi)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  bank = features.gabor_bank(ksize=ksize[0], sigmas=(sigma,),
                             wavelengths=(lambd,), orientations=2,
                             gamma=gamma)
  np.testing.assert_allclose(
      bank[:, :, 0, 2], cv2.getGaborKernel((ksize[0],) * 2, sigma, math.pi / 2,
                                           lambd, gamma, 0.0), atol=1e-5)


def test_gabor_magnitudes_are_the_filtered_pair():
  image = np.random.default_rng(3).normal(size=(16, 16)).astype(np.float32)
  bank = features.gabor_bank(ksize=7, sigmas=(2.0,), wavelengths=(4.0,),
                             orientations=3, gamma=0.5)
  _assert_equals_opencv(image, bank)


@pytest.mark.parametrize("kernel_shape", [(9, 9), (4, 6), (5, 2)])
def test_gabor_magnitudes_of_any_bank_equal_opencv(kernel_shape):
  """Any (even-sized, non-square) kernel pairs on a non-square image: the
  FFT's padding and crop are cv2.filter2D's zero border and anchor."""
  rng = np.random.default_rng(5)
  image = rng.normal(size=(13, 20)).astype(np.float32)
  bank = rng.normal(size=(*kernel_shape, 1, 6)).astype(np.float32)
  _assert_equals_opencv(image, bank)


def _assert_equals_opencv(image: np.ndarray, bank: np.ndarray) -> None:
  """Each even/odd pair's magnitude against two cv2.filter2D calls."""
  got = np.asarray(features.gabor_magnitudes(jnp.asarray(image[None]), bank))
  pairs = bank.shape[-1] // 2
  assert got.shape == (1, *image.shape, pairs)
  for f in range(pairs):
    even, odd = (cv2.filter2D(image, cv2.CV_32F, bank[:, :, 0, 2 * f + k],
                              borderType=cv2.BORDER_CONSTANT)
                 for k in (0, 1))
    np.testing.assert_allclose(got[0, ..., f], np.hypot(even, odd),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,want", [(1, 1), (40, 40), (56, 56), (57, 60),
                                    (97, 98), (121, 125)])
def test_fft_sizes_have_no_prime_factor_above_7(n, want):
  assert gabor.fft_size(n) == want


SPEC = fusion.FusionSpec(features=("lbp", "gabor"),
                         lbp=fusion.LBPSettings(grid=(4, 4)),
                         gabor=fusion.GaborSettings(grid=(4, 4)))


def _batch(n: int = 4) -> jnp.ndarray:
  return jnp.asarray(np.random.default_rng(4).normal(size=(n, 32, 32, 3)),
                     jnp.float32)


def test_lbp_codes_are_identical_under_jit():
  gray = _batch()[..., 0]
  for method in features.LBP_METHODS:
    eager = features.lbp_codes(gray, points=8, radius=1.5, method=method)
    jitted = jax.jit(features.lbp_codes, static_argnames=(
        "points", "radius", "method"))(gray, points=8, radius=1.5,
                                       method=method)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(eager))


@pytest.mark.parametrize("fn", [fusion.feature_maps, fusion.descriptor])
def test_features_are_the_same_under_jit(fn):
  """Codes are integers; the float parts (Gabor, cell means) may round
  differently once XLA fuses them, by a float32 ulp or so."""
  x = _batch()
  eager = np.asarray(fn(x, SPEC))
  jitted = np.asarray(jax.jit(fn, static_argnums=1)(x, SPEC))
  np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
  per_image = np.concatenate([np.asarray(fn(x[i:i + 1], SPEC))
                              for i in range(len(x))])
  np.testing.assert_allclose(per_image, eager, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fn", [fusion.feature_maps, fusion.descriptor])
def test_features_are_the_same_on_1_and_4_devices(fn):
  """Within float32 rounding, not bit for bit: each device runs the program
  on a quarter of the batch, and XLA:CPU vectorises the Gabor filtering and
  cell means differently for other shapes and instruction sets (one ulp on
  an AMD EPYC without AVX-512). The LBP codes themselves are integers."""
  assert jax.device_count() >= 4
  x = _batch(8)
  jitted = jax.jit(fn, static_argnums=1)
  one = np.asarray(jitted(jax.device_put(x, jax.devices()[0]), SPEC))
  mesh = Mesh(np.array(jax.devices()[:4]), ("batch",))
  sharded = jax.device_put(x, NamedSharding(mesh, PartitionSpec("batch")))
  four = jitted(sharded, SPEC)
  assert len(four.sharding.device_set) == 4
  np.testing.assert_allclose(np.asarray(four), one, rtol=1e-6, atol=1e-7)
