"""MediaPipe FaceMesh (``face_landmark.tflite``) as a Flax module.

A 192x192 RGB crop with values in [0, 1] -> 468 3-D points in pixels of the
crop (x right, y down, z relative depth in the same scale) and a face score
(the sigmoid of the presence logit). The network is MediaPipe's: a stride-2
3x3 convolution and residual blocks (3x3 depthwise, 1x1 pointwise, added to
the input or to its 2x2 max-pool padded with zero channels, then a PReLU),
then two heads on the 6x6 features. Parameter names are those of the
TFLite file's tensors (``conv2d_2``, ``depthwise_conv2d_1``, ``p_re_lu_1``)
so that ``ferjax.convert.facemesh_tflite`` maps them one to one.

The weights ship in ``ferjax/pretrained/facemesh`` (float16 as in the
file, Apache-2.0, see its PROVENANCE.txt); ``load_variables`` reads them.
"""

import functools
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ferjax import pretrained

INPUT_SIZE = 192
NUM_POINTS = 468
WEIGHTS = pretrained.FACEMESH / "face_landmark.npz"
PROVENANCE = pretrained.FACEMESH / "PROVENANCE.txt"
LICENSE = pretrained.FACEMESH / "LICENSE"

# (depthwise, pointwise, prelu, output channels, stride) of each residual
# block, by the TFLite tensors' numbers: the backbone (192 -> 6 pixels)...
_BACKBONE = tuple(
    (i, i + 1, i + 1, 16 if i < 3 else 32 if i < 6 else 64 if i < 9 else 128,
     2 if i in (3, 6, 9, 12) else 1) for i in range(1, 15))
# ...the landmarks head, before and after its 1x1 reduction to 32 channels...
_POINTS_HEAD = ((15, 16, 16, 128, 2), (16, 17, 17, 128, 1),
                (17, 18, 18, 128, 1))
_POINTS_TAIL = ((18, 20, 20, 32, 1),)
# ...and the face-score head.
_SCORE_HEAD = ((23, 28, 26, 128, 2),)
_SCORE_TAIL = ((24, 30, 28, 32, 1),)


class PReLU(nn.Module):
  """x for x >= 0, alpha * x below, one alpha per channel (TFLite PRELU)."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    alpha = self.param("alpha", nn.initializers.constant(0.25),
                       (1, 1, x.shape[-1]))
    return jnp.where(x >= 0, x, alpha.astype(x.dtype) * x)


class DepthwiseConv(nn.Module):
  """A 3x3 depthwise convolution with TensorFlow's SAME padding, computed as
  nine shifted products: XLA:CPU's grouped convolution took 18x more CPU
  time on FaceMesh's first layers (96x96x16, batch 64)."""

  strides: int = 1
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    channels = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, 1, channels), jnp.float32).astype(self.dtype)
    bias = self.param("bias", nn.initializers.zeros, (channels,),
                      jnp.float32).astype(self.dtype)
    s = self.strides
    pads = []
    for size in x.shape[1:3]:
      out = -(-size // s)
      total = max((out - 1) * s + 3 - size, 0)
      pads.append((total // 2, total - total // 2, out))
    (top, bottom, out_h), (left, right, out_w) = pads
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    span_h, span_w = (out_h - 1) * s + 1, (out_w - 1) * s + 1
    return sum(padded[:, i:i + span_h:s, j:j + span_w:s, :] * kernel[i, j, 0]
               for i in range(3) for j in range(3)) + bias


class FaceMesh(nn.Module):
  """(B, 192, 192, 3) RGB in [0, 1] -> ((B, 468, 3) points, (B,) score)."""

  dtype: jnp.dtype = jnp.float32

  def _block(self, x: jnp.ndarray, block: tuple[int, int, int, int, int]
             ) -> jnp.ndarray:
    dw, pw, act, features, stride = block
    channels = x.shape[-1]
    h = DepthwiseConv(stride, self.dtype, name=f"depthwise_conv2d_{dw}")(x)
    h = nn.Conv(features, (1, 1), dtype=self.dtype, name=f"conv2d_{pw}")(h)
    if stride > 1:
      x = nn.max_pool(x, (2, 2), (2, 2), padding="VALID")
    if features > channels:
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, features - channels)))
    return PReLU(name=f"p_re_lu_{act}")(x + h)

  def _reduce(self, x: jnp.ndarray, conv: int, act: int) -> jnp.ndarray:
    x = nn.Conv(32, (1, 1), dtype=self.dtype, name=f"conv2d_{conv}")(x)
    return PReLU(name=f"p_re_lu_{act}")(x)

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    if x.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
      raise ValueError(f"FaceMesh input must be (batch, {INPUT_SIZE}, "
                       f"{INPUT_SIZE}, 3), got {x.shape}")
    x = x.astype(self.dtype)
    x = nn.Conv(16, (3, 3), (2, 2), padding="SAME", dtype=self.dtype,
                name="conv2d_1")(x)
    x = PReLU(name="p_re_lu_1")(x)
    for block in _BACKBONE:
      x = self._block(x, block)

    h = x
    for block in _POINTS_HEAD:
      h = self._block(h, block)
    h = self._reduce(h, 19, 19)
    for block in _POINTS_TAIL:
      h = self._block(h, block)
    points = nn.Conv(NUM_POINTS * 3, (3, 3), padding="VALID",
                     dtype=self.dtype, name="conv2d_21")(h)

    s = x
    for block in _SCORE_HEAD:
      s = self._block(s, block)
    s = self._reduce(s, 29, 27)
    for block in _SCORE_TAIL:
      s = self._block(s, block)
    logit = nn.Conv(1, (3, 3), padding="VALID", dtype=self.dtype,
                    name="conv2d_31")(s)
    points = points.reshape(x.shape[0], NUM_POINTS, 3).astype(jnp.float32)
    return points, jax.nn.sigmoid(logit.reshape(-1).astype(jnp.float32))


def load_variables(path: str | pathlib.Path = WEIGHTS) -> dict:
  """The ``{'params': ...}`` of ``FaceMesh`` from a converted ``.npz``
  (keys ``layer/param``), as float32."""
  path = pathlib.Path(path)
  try:
    with np.load(path, allow_pickle=False) as stored:
      flat = {k: stored[k] for k in stored.files}
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: not a converted FaceMesh weights file "
                     f"(ferjax convert facemesh): {e}") from e
  params: dict = {}
  for key, value in flat.items():
    layer, _, name = key.partition("/")
    params.setdefault(layer, {})[name] = jnp.asarray(value, jnp.float32)
  expected = jax.tree.map(lambda a: a.shape, abstract_params())
  got = jax.tree.map(lambda a: a.shape, params)
  if got != expected:
    raise ValueError(f"{path}: its arrays do not match FaceMesh's "
                     f"parameters (another model, or a damaged file)")
  return {"params": params}


def abstract_params() -> dict:
  """FaceMesh's parameter shapes and dtypes, without computing anything."""
  x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return jax.eval_shape(FaceMesh().init, jax.random.key(0), x)["params"]


@functools.cache
def _apply() -> callable:
  return jax.jit(FaceMesh().apply)


def run(variables: dict, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Points (B, 468, 3) and scores (B,) of float crops (B, 192, 192, 3)."""
  points, scores = _apply()(variables, jnp.asarray(crops, jnp.float32))
  return np.asarray(points), np.asarray(scores)
