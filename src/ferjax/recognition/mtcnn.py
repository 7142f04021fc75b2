"""MTCNN face detection with five landmarks, as Flax modules.

A port of the ``mtcnn`` package, version 1.0.0 (Ivan de Paz Centeno, MIT
licence), which runs Zhang et al.'s cascade (P-Net proposals on an image
pyramid, R-Net refinement, O-Net boxes and landmarks) in TensorFlow. Every
step follows that implementation, its quirks included (box regression before
the first NMS, an NMS that also lets suppressed boxes suppress others,
``crop_and_resize`` sampling), so that its weights give its detections;
tests/unit/test_detection.py checks this against tests/data/mtcnn_reference.json.

The weights are read from the installed ``mtcnn`` package's assets with
joblib; the package is never imported, because importing it loads TensorFlow.
"""

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ferjax.recognition.align import LANDMARK_NAMES, Face

# The reference's defaults (mtcnn 1.0.0 StagePNet/StageRNet/StageONet).
MIN_FACE_SIZE = 20
SCALE_FACTOR = 0.709
THRESHOLDS = (0.6, 0.7, 0.8)
_PNET_CELL = 12
_PNET_STRIDE = 2
_NMS_PNET_SCALE = 0.5
_NMS_PNET_ALL = 0.7
_NMS_RNET = 0.7
_NMS_ONET = 0.7
# P-Net runs on square tiles giving T x T outputs each, T one of _TILE_OUTS:
# its 12-pixel window moves 2 pixels per output, so they need 2 (T - 1) + 12
# pixels. Each pyramid level gets the tile size that covers it with the
# fewest multiply-adds (see tile_size).
_TILE_OUTS = (16, 32, 64)
# Largest batch of each net; a remainder runs in batches of powers of four,
# padded up only when that wastes little, so that each net compiles for at
# most three batch sizes (per tile size) whatever the image.
_BATCH = {"pnet": 16, "rnet": 64, "onet": 16}
# Proposals around a face of the previous frame (MTCNN.follow): sizes as
# multiples of its longer side, and centre shifts in units of the size.
_FOLLOW_SCALES = (0.85, 1.0, 1.2)
_FOLLOW_SHIFTS = ((0.0, 0.0), (-0.15, 0.0), (0.15, 0.0), (0.0, -0.15),
                  (0.0, 0.15))


class PReLU(nn.Module):
  """PReLU with one slope per channel, as Keras' PReLU(shared_axes=[1, 2])."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    alpha = self.param("alpha", nn.initializers.constant(0.25),
                       (x.shape[-1],))
    return jnp.where(x >= 0, x, alpha * x)


def _conv_prelu(x: jnp.ndarray, features: int, kernel: int,
                index: int) -> jnp.ndarray:
  x = nn.Conv(features, (kernel, kernel), padding="VALID",
              name=f"conv{index}")(x)
  return PReLU(name=f"prelu{index}")(x)


def _flatten_keras(x: jnp.ndarray) -> jnp.ndarray:
  # Keras permuted (H, W, C) to (W, H, C) before flattening; the dense
  # weights expect that order.
  return jnp.transpose(x, (0, 2, 1, 3)).reshape(x.shape[0], -1)


class PNet(nn.Module):
  """Proposal network: fully convolutional, one 12x12 window per 2 pixels.

  ``valid`` (N, 2), when given, is how many rows and columns of each input's
  first feature map lie inside the image; the rest is set to -inf before
  pooling, exactly as 'SAME' pooling pads at the image's edge, so that a
  zero-padded tile gives the outputs of the unpadded image.
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray,
               valid: jnp.ndarray | None = None) -> tuple[jnp.ndarray,
                                                          jnp.ndarray]:
    x = _conv_prelu(x, 10, 3, 1)
    if valid is not None:
      rows = jnp.arange(x.shape[1])[None, :, None] < valid[:, 0, None, None]
      cols = jnp.arange(x.shape[2])[None, None, :] < valid[:, 1, None, None]
      x = jnp.where((rows & cols)[..., None], x, -jnp.inf)
    x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
    x = _conv_prelu(x, 16, 3, 2)
    x = _conv_prelu(x, 32, 3, 3)
    offsets = nn.Conv(4, (1, 1), name="conv4_1")(x)
    probs = nn.softmax(nn.Conv(2, (1, 1), name="conv4_2")(x))
    return offsets, probs


class RNet(nn.Module):
  """Refinement network on 24x24 patches."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    x = _conv_prelu(x, 28, 3, 1)
    x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
    x = _conv_prelu(x, 48, 3, 2)
    x = nn.max_pool(x, (3, 3), (2, 2), padding="VALID")
    x = _conv_prelu(x, 64, 2, 3)
    x = PReLU(name="prelu4")(nn.Dense(128, name="fc4")(_flatten_keras(x)))
    offsets = nn.Dense(4, name="fc5_1")(x)
    probs = nn.softmax(nn.Dense(2, name="fc5_2")(x))
    return offsets, probs


class ONet(nn.Module):
  """Output network on 48x48 patches: boxes, landmarks, face probability."""

  @nn.compact
  def __call__(
      self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    x = _conv_prelu(x, 32, 3, 1)
    x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
    x = _conv_prelu(x, 64, 3, 2)
    x = nn.max_pool(x, (3, 3), (2, 2), padding="VALID")
    x = _conv_prelu(x, 64, 3, 3)
    x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
    x = _conv_prelu(x, 128, 2, 4)
    x = PReLU(name="prelu5")(nn.Dense(256, name="fc5")(_flatten_keras(x)))
    offsets = nn.Dense(4, name="fc6_1")(x)
    landmarks = nn.Dense(10, name="fc6_2")(x)
    probs = nn.softmax(nn.Dense(2, name="fc6_3")(x))
    return offsets, landmarks, probs


# Layer names in the order the Keras models stored their weights.
_LAYERS = {
    "pnet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3",
             "conv4_1", "conv4_2"),
    "rnet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4",
             "prelu4", "fc5_1", "fc5_2"),
    "onet": ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4",
             "prelu4", "fc5", "prelu5", "fc6_1", "fc6_2", "fc6_3"),
}


def weights_dir() -> Path:
  """The folder of the installed ``mtcnn`` package's weight files."""
  spec = importlib.util.find_spec("mtcnn")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        "MTCNN weights come from the mtcnn package, which is not installed: "
        "pip install mtcnn==1.0.0 (it does not need TensorFlow)")
  return Path(spec.submodule_search_locations[0]) / "assets" / "weights"


def load_variables(net: str, directory: Path | None = None) -> dict[str, Any]:
  """Flax variables of ``net`` ('pnet', 'rnet' or 'onet') from ``net.lz4``.

  The file is a joblib list of the Keras model's weights: HWIO kernels and
  biases, which Flax uses as they are, and PReLU slopes, flattened here.
  """
  import joblib  # pylint: disable=import-outside-toplevel

  path = (directory or weights_dir()) / f"{net}.lz4"
  if not path.is_file():
    raise FileNotFoundError(f"{path}: MTCNN weight file not found")
  arrays = [np.asarray(a, np.float32) for a in joblib.load(path)]
  module = {"pnet": PNet, "rnet": RNet, "onet": ONet}[net]()
  size = {"pnet": 12, "rnet": 24, "onet": 48}[net]
  expected = jax.eval_shape(module.init, jax.random.key(0),
                            jnp.zeros((1, size, size, 3)))["params"]
  params, i = {}, 0
  for layer in _LAYERS[net]:
    names = ("alpha",) if layer.startswith("prelu") else ("kernel", "bias")
    params[layer] = {}
    for name in names:
      if i >= len(arrays):
        raise ValueError(f"{path}: {len(arrays)} arrays, expected more")
      want = expected[layer][name].shape
      value = arrays[i].reshape(want) if name == "alpha" else arrays[i]
      if value.shape != want:
        raise ValueError(f"{path}: array {i} ({layer}.{name}) has shape "
                         f"{arrays[i].shape}, expected {want}")
      params[layer][name] = jnp.asarray(value)
      i += 1
  if i != len(arrays):
    raise ValueError(f"{path}: {len(arrays)} arrays, expected {i}")
  return {"params": params}


def scale_pyramid(height: int, width: int, min_face_size: float,
                  scale_factor: float) -> np.ndarray:
  """Scales at which P-Net's 12-pixel window sees faces of every size.

  As the reference computes it: the count depends on the image only, the
  first scale on ``min_face_size``.
  """
  count = round(-(math.log(min(width, height) / _PNET_CELL)
                  / math.log(scale_factor) + 1))
  return (_PNET_CELL / min_face_size) * scale_factor ** np.arange(count)


def _area_weights(size_in: int, size_out: int) -> tuple[np.ndarray,
                                                        np.ndarray]:
  # TensorFlow's resize_area: output pixel i averages the input interval
  # [i * s, (i + 1) * s) with s = size_in / size_out computed in float32.
  scale = np.float32(size_in) / np.float32(size_out)
  i = np.arange(size_out, dtype=np.float32)
  start, end = i * scale, (i + 1) * scale
  first = np.floor(start).astype(np.int64)
  taps = int((np.ceil(end).astype(np.int64) - first).max())
  index = first[:, None] + np.arange(taps)
  weight = (np.minimum(index + 1, end[:, None])
            - np.maximum(index, start[:, None])).clip(min=0)
  return np.minimum(index, size_in - 1), (weight / scale).astype(np.float32)


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Area-averaging resize of float (H, W, C), as tf.image.resize 'area'."""
  rows, row_weights = _area_weights(image.shape[0], height)
  cols, col_weights = _area_weights(image.shape[1], width)
  out = np.einsum("hk,hkwc->hwc", row_weights, image[rows])
  return np.einsum("wk,hwkc->hwc", col_weights, out[:, cols])


def crop_and_resize(image: np.ndarray, boxes: np.ndarray,
                    size: int) -> np.ndarray:
  """Bilinear ``size`` x ``size`` patches of pixel boxes (x1, y1, x2, y2).

  Follows the reference's call of tf.image.crop_and_resize: boxes divided by
  the image size, sampled over (size - 1) steps of the (H - 1)-wide grid, and
  zero (mid-grey once normalised) outside the image.
  """
  h, w = image.shape[:2]
  steps = np.arange(size, dtype=np.float64) / (size - 1)

  def grid(lo, hi, n):
    return ((lo / n)[:, None] + (hi - lo)[:, None] / n * steps) * (n - 1)

  ys, xs = grid(boxes[:, 1], boxes[:, 3], h), grid(boxes[:, 0], boxes[:, 2], w)
  y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
  dy, dx = (ys - y0)[:, :, None, None], (xs - x0)[:, None, :, None]
  yi = [np.clip(y0, 0, h - 1), np.clip(np.ceil(ys).astype(np.int64), 0, h - 1)]
  xi = [np.clip(x0, 0, w - 1), np.clip(np.ceil(xs).astype(np.int64), 0, w - 1)]

  def at(a, b):
    return image[yi[a][:, :, None], xi[b][:, None, :]]

  top = at(0, 0) + (at(0, 1) - at(0, 0)) * dx
  bottom = at(1, 0) + (at(1, 1) - at(1, 0)) * dx
  patches = top + (bottom - top) * dy
  inside = (((ys >= 0) & (ys <= h - 1))[:, :, None]
            & ((xs >= 0) & (xs <= w - 1))[:, None, :])
  return np.where(inside[..., None], patches, 0.0).astype(np.float32)


def _sort_desc(boxes: np.ndarray) -> np.ndarray:
  # The reference reverses an ascending argsort; ties keep its order.
  return boxes[np.argsort(boxes[:, 4])[::-1]]


def nms(boxes: np.ndarray, threshold: float, method: str = "union",
        sort: bool = True) -> np.ndarray:
  """Rows of ``boxes`` (x1, y1, x2, y2, score, ...) kept by the reference's NMS.

  Unlike greedy NMS, a box is dropped when any higher-ranked box overlaps it
  by more than ``threshold``, even one that was itself dropped. The overlap
  is intersection over union, or over the smaller box for ``method='min'``.
  """
  if sort:
    boxes = _sort_desc(boxes)
  n = len(boxes)
  if n == 0:
    return boxes
  x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
  area = (x2 - x1) * (y2 - y1)
  dropped = np.zeros(n, bool)
  for start in range(0, n, 256):
    rows = slice(start, min(n, start + 256))
    inter = (np.maximum(0, np.minimum(x2[rows, None], x2)
                        - np.maximum(x1[rows, None], x1))
             * np.maximum(0, np.minimum(y2[rows, None], y2)
                          - np.maximum(y1[rows, None], y1)))
    if method == "union":
      denominator = area[rows, None] + area - inter
    elif method == "min":
      denominator = np.minimum(area[rows, None], area)
    else:
      raise ValueError(f"method must be 'union' or 'min', got {method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
      overlap = inter / denominator
    later = np.arange(n) > np.arange(rows.start, rows.stop)[:, None]
    dropped |= ((overlap > threshold) & later).any(axis=0)
  return boxes[~dropped]


def square(boxes: np.ndarray) -> np.ndarray:
  """Boxes grown to squares about their centres along the shorter side."""
  boxes = boxes.copy()
  w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
  side = np.maximum(w, h)
  boxes[:, 0] += w * 0.5 - side * 0.5
  boxes[:, 1] += h * 0.5 - side * 0.5
  boxes[:, 2] = boxes[:, 0] + side
  boxes[:, 3] = boxes[:, 1] + side
  return boxes


def calibrate(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
  """Applies regressed offsets, in units of the box size (+1 as reference)."""
  boxes = boxes.copy()
  w = boxes[:, 2] - boxes[:, 0] + 1
  h = boxes[:, 3] - boxes[:, 1] + 1
  boxes[:, :4] += offsets * np.stack([w, h, w, h], axis=-1)
  return boxes


def _pnet_out(size: int) -> int:
  # conv 3 (valid), pool 2 ('SAME'), conv 3, conv 3.
  return -(-(size - 2) // 2) - 4


def _tile_cost(tile_out: int) -> int:
  # P-Net's multiply-adds on one tile: conv1 (3 -> 10) on 2T + 8 squared,
  # conv2 (10 -> 16) on T + 2, conv3 (16 -> 32) and the heads (32 -> 6) on T.
  return ((2 * tile_out + 8) ** 2 * 27 * 10 + (tile_out + 2) ** 2 * 90 * 16
          + tile_out ** 2 * (144 * 32 + 32 * 6))


def tile_size(height: int, width: int) -> int:
  """Outputs per side of the P-Net tiles for an image of this size: the
  size whose tiles cover its output map with the least work (the larger
  size on a tie, for fewer calls)."""
  oh, ow = max(1, _pnet_out(height)), max(1, _pnet_out(width))
  return min(_TILE_OUTS[::-1], key=lambda t: -(-oh // t) * -(-ow // t)
             * _tile_cost(t))


def _chunks(n: int, largest: int) -> list[tuple[int, int]]:
  """(count, batch size) runs covering ``n`` items: full batches of
  ``largest``, then powers of four, rounding a remainder up to the next
  one when at most a quarter of that batch would be padding."""
  runs, left = [], n
  while left:
    size = 1
    while size * 4 <= min(left, largest):
      size *= 4
    if size < largest and size * 4 - left <= size:
      size *= 4
    runs.append((min(size, left), size))
    left -= min(size, left)
  return runs


def pnet_tiles(image: np.ndarray, tile_out: int = _TILE_OUTS[-1]) -> tuple[
    np.ndarray, np.ndarray, list[tuple[int, int]]]:
  """Cuts an image into overlapping P-Net tiles of one fixed shape.

  Returns the zero-padded tiles (N, S, S, C) with S = 2 (tile_out - 1) + 12,
  each tile's valid first-feature-map extent for ``PNet(valid=...)`` and the
  (row, col) of its first output in the image's output map. A tile yields
  ``tile_out`` x ``tile_out`` outputs, exactly those of the whole image
  there.
  """
  h, w = image.shape[:2]
  tile_in = _PNET_STRIDE * (tile_out - 1) + _PNET_CELL
  tiles, valid, origins = [], [], []
  for oy in range(0, max(_pnet_out(h), 0), tile_out):
    for ox in range(0, max(_pnet_out(w), 0), tile_out):
      part = image[2 * oy:2 * oy + tile_in, 2 * ox:2 * ox + tile_in]
      tile = np.zeros((tile_in, tile_in, image.shape[2]), np.float32)
      tile[:part.shape[0], :part.shape[1]] = part
      tiles.append(tile)
      valid.append((part.shape[0] - 2, part.shape[1] - 2))
      origins.append((oy, ox))
  return (np.stack(tiles), np.asarray(valid, np.int32).reshape(-1, 2),
          origins)


def _check_image(image: np.ndarray) -> None:
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"image must be uint8 RGB of shape (H, W, 3), got "
                     f"{image.dtype} {image.shape}")


def _normalize(image: np.ndarray) -> np.ndarray:
  return (image.astype(np.float32) - 127.5) / 128.0


class MTCNN:
  """The three-stage MTCNN detector on uint8 RGB images.

  Defaults are the reference's: faces from ``min_face_size`` pixels, pyramid
  levels ``scale_factor`` apart, P-/R-/O-Net ``thresholds``. ``weights`` is
  a folder holding pnet.lz4, rnet.lz4 and onet.lz4 (default: the mtcnn
  package's). Every net runs on fixed-size batches (P-Net on fixed-size
  tiles of each pyramid level), so each compiles once, whatever the image
  sizes.
  """

  def __init__(self, *, min_face_size: float = MIN_FACE_SIZE,
               scale_factor: float = SCALE_FACTOR,
               thresholds: Sequence[float] = THRESHOLDS,
               weights: Path | None = None):
    self.min_face_size = min_face_size
    self.scale_factor = scale_factor
    self.thresholds = tuple(thresholds)
    self._variables = {n: load_variables(n, weights)
                       for n in ("pnet", "rnet", "onet")}
    self._nets = {"pnet": jax.jit(PNet().apply), "rnet": jax.jit(RNet().apply),
                  "onet": jax.jit(ONet().apply)}

  def _run(self, net: str, *inputs: np.ndarray) -> list[np.ndarray]:
    """Runs ``net`` over the batch in the batch sizes of ``_chunks``."""
    results, start = [], 0
    for count, size in _chunks(len(inputs[0]), _BATCH[net]):
      padded = [np.zeros((size, *x.shape[1:]), x.dtype) for x in inputs]
      for p, x in zip(padded, inputs, strict=True):
        p[:count] = x[start:start + count]
      results.append((count, self._nets[net](self._variables[net], *padded)))
      start += count
    return [np.concatenate([np.asarray(r[i])[:count] for count, r in results])
            .astype(np.float64) for i in range(len(results[0][1]))]

  def pnet_maps(self, levels: Sequence[np.ndarray]) -> list[tuple[np.ndarray,
                                                                   np.ndarray]]:
    """P-Net's offset (h, w, 4) and face-probability (h, w) maps of each
    normalised pyramid level, computed tile by tile, each tile size in one
    run of batches."""
    sizes = [tile_size(*level.shape[:2]) for level in levels]
    cut = [pnet_tiles(level, size) for level, size in zip(levels, sizes,
                                                          strict=True)]
    outputs = {}
    for size in sorted(set(sizes)):
      mine = [c for c, s in zip(cut, sizes, strict=True) if s == size]
      outputs[size] = self._run("pnet", np.concatenate([c[0] for c in mine]),
                                np.concatenate([c[1] for c in mine]))
    maps, used = [], dict.fromkeys(outputs, 0)
    for level, size, (_, _, origins) in zip(levels, sizes, cut, strict=True):
      offsets, probs = outputs[size]
      oh, ow = _pnet_out(level.shape[0]), _pnet_out(level.shape[1])
      level_offsets, level_probs = np.zeros((oh, ow, 4)), np.zeros((oh, ow))
      for oy, ox in origins:
        i = used[size]
        th, tw = min(size, oh - oy), min(size, ow - ox)
        level_offsets[oy:oy + th, ox:ox + tw] = offsets[i, :th, :tw]
        level_probs[oy:oy + th, ox:ox + tw] = probs[i, :th, :tw, 1]
        used[size] += 1
      maps.append((level_offsets, level_probs))
    return maps

  def _proposals(self, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scales = [s for s in scale_pyramid(h, w, self.min_face_size,
                                       self.scale_factor)
              if min(int(h * s), int(w * s)) >= _PNET_CELL]
    if not scales:
      return np.zeros((0, 5))
    maps = self.pnet_maps(
        [resize_area(image, int(h * s), int(w * s)) for s in scales])
    per_scale = []
    for scale, (offsets, probs) in zip(scales, maps, strict=True):
      ys, xs = np.nonzero(probs > self.thresholds[0])
      # The window of output (y, x) spans pixels 2x + 1 to 2x + 12 (the
      # reference's convention); offsets are in units of its 11-pixel size.
      x1, y1 = xs * _PNET_STRIDE + 1, ys * _PNET_STRIDE + 1
      x2, y2 = xs * _PNET_STRIDE + _PNET_CELL, ys * _PNET_STRIDE + _PNET_CELL
      reg = offsets[ys, xs] * (_PNET_CELL - 1)
      boxes = np.stack([x1 + reg[:, 0], y1 + reg[:, 1], x2 + reg[:, 2],
                        y2 + reg[:, 3], probs[ys, xs]], axis=-1)
      boxes = _sort_desc(boxes)
      boxes[:, :4] /= scale
      per_scale.append(nms(boxes, _NMS_PNET_SCALE, sort=False))
    return square(nms(np.concatenate(per_scale), _NMS_PNET_ALL))

  def _refine(self, normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    offsets, probs = self._run("rnet", crop_and_resize(normalized, boxes, 24))
    boxes = calibrate(np.concatenate([boxes[:, :4], probs[:, 1:]], axis=1),
                      offsets)
    return square(nms(boxes[boxes[:, 4] > self.thresholds[1]], _NMS_RNET))

  def _output(self, normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Rows of x1, y1, x2, y2, score, five landmark x, five landmark y."""
    offsets, marks, probs = self._run("onet",
                                      crop_and_resize(normalized, boxes, 48))
    w = boxes[:, 2:3] - boxes[:, 0:1] + 1
    h = boxes[:, 3:4] - boxes[:, 1:2] + 1
    marks = np.concatenate([w * marks[:, :5] + boxes[:, 0:1] - 1,
                            h * marks[:, 5:] + boxes[:, 1:2] - 1], axis=1)
    boxes = calibrate(np.concatenate([boxes[:, :4], probs[:, 1:]], axis=1),
                      offsets)
    boxes = np.concatenate([boxes, marks], axis=1)
    return nms(boxes[boxes[:, 4] > self.thresholds[2]], _NMS_ONET, "min")

  def detect(self, image: np.ndarray) -> list[Face]:
    """Faces in a uint8 RGB (H, W, 3) image, most confident first."""
    _check_image(image)
    normalized = _normalize(image)
    boxes = self._proposals(normalized)
    if len(boxes):
      boxes = self._refine(normalized, boxes)
    if len(boxes):
      boxes = self._output(normalized, boxes)
    return _to_faces(boxes, *image.shape[:2])

  def follow(self, image: np.ndarray, faces: Sequence[Face]) -> list[Face]:
    """The faces near ``faces`` (found in the previous frame) in ``image``.

    Replaces P-Net's proposals with a few square boxes around each previous
    face (three sizes, five positions) and runs the cascade's last two
    stages on them: a batch of 24x24 and 48x48 patches instead of a
    pyramid. A face that moved by more than about a fifth of its size, or
    is no longer a face by R-/O-Net's thresholds, is lost until the next
    detection.
    """
    _check_image(image)
    if not faces:
      return []
    proposals = []
    for x, y, w, h in (f.box for f in faces):
      for scale in _FOLLOW_SCALES:
        side = max(w, h) * scale
        for dx, dy in _FOLLOW_SHIFTS:
          x1 = x + w / 2 + dx * side - side / 2
          y1 = y + h / 2 + dy * side - side / 2
          proposals.append((x1, y1, x1 + side, y1 + side, 1.0))
    normalized = _normalize(image)
    boxes = self._refine(normalized, np.asarray(proposals, np.float64))
    if len(boxes):
      boxes = self._output(normalized, boxes)
    return _to_faces(boxes, *image.shape[:2])


def _to_faces(boxes: np.ndarray, height: int, width: int) -> list[Face]:
  faces = []
  for row in boxes:
    # Boxes are clipped to the image as the reference does by default;
    # landmarks are not.
    x1, x2 = np.clip(row[[0, 2]], 0, width - 1)
    y1, y2 = np.clip(row[[1, 3]], 0, height - 1)
    landmarks = {name: (float(row[5 + i]), float(row[10 + i]))
                 for i, name in enumerate(LANDMARK_NAMES)}
    faces.append(Face((float(x1), float(y1), float(x2 - x1), float(y2 - y1)),
                      float(row[4]), landmarks))
  return faces
