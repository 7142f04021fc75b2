"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) without channel groups."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import pooling

# Below this many pixels on the shorter side the paper's stride-4 stem leaves
# (almost) nothing to pool, so ``small_input=None`` switches geometry.
SMALL_INPUT_SIDE = 96


def local_response_norm(x: jnp.ndarray, *, size: int = 5, alpha: float = 1e-4,
                        beta: float = 0.75, k: float = 2.0) -> jnp.ndarray:
  """Normalises each activation by its ``size`` neighbours across channels.

  Semantics of ``torch.nn.LocalResponseNorm`` (and Caffe's LRN):
  ``b_c = a_c / (k + alpha / size * sum_{c'} a_{c'}^2) ** beta`` with ``c'``
  running over ``[c - size // 2, c + (size - 1) // 2]`` and zeros beyond the
  channel edges. Note the ``alpha / size``: the AlexNet paper's formula has a
  bare ``alpha``, so its constants reproduced here are torch's, not the
  paper's. Computed in float32 whatever the input dtype.
  """
  squares = jnp.square(x.astype(jnp.float32))
  channels = x.shape[-1]
  padded = jnp.pad(squares, [(0, 0)] * (x.ndim - 1)
                   + [(size // 2, (size - 1) // 2)])
  window_sum = sum(padded[..., i:i + channels] for i in range(size))
  scale = (k + alpha / size * window_sum) ** beta
  return (x.astype(jnp.float32) / scale).astype(x.dtype)


def _overlapping_max_pool(x: jnp.ndarray, where: str) -> jnp.ndarray:
  """The paper's 3x3 stride-2 max-pool, refusing maps it would erase."""
  if min(x.shape[1:3]) < 3:
    raise ValueError(
        f"AlexNet input: the {x.shape[1]}x{x.shape[2]} map before {where} is "
        "smaller than its 3x3 window; expected inputs of at least 15x15 with "
        "small_input=True, or 67x67 with small_input=False")
  return pooling.max_pool(x, (3, 3), strides=(2, 2))


class AlexNet(nn.Module):
  """Five convolutions, LRN after the first two, three dense layers.

  Paper geometry (``small_input=False``): conv 96 11x11/4 VALID, ReLU, LRN,
  max-pool 3x3/2; conv 256 5x5, ReLU, LRN, pool; conv 384, 384, 256 3x3 each
  with ReLU; pool; dense ``classifier_width`` twice with ReLU and dropout 0.5;
  dense ``num_classes``. Later convolutions are SAME, so 227x227 ends at
  6x6x256; with 3 channels, 1000 classes and the default width that is
  62,378,344 parameters. LRN uses size 5, alpha 1e-4, beta 0.75, k 2 with
  torch's alpha/size convention (see ``local_response_norm``).

  Small geometry (``small_input=True``, or ``None`` and the shorter input side
  under ``SMALL_INPUT_SIDE``): the first convolution becomes 5x5 stride
  ``small_stride`` SAME, everything else is unchanged. With stride 1, 48x48
  ends at 5x5x256 and 32x32 at 3x3x256, but costs 1.35 GFLOPs per 48x48 image
  (more than VGG-16), because conv2 runs at 23x23; stride 2 downsamples early
  as the paper's stem does (48x48 ends at 2x2x256) for about a fifth of that.
  The flatten size, hence the first dense layer, follows the input.

  Layers are named in order (Conv_0..Conv_4, Dense_0..Dense_2) for weight
  import. Convolutions use He initialisation so training from scratch works
  without the paper's hand-tuned constants; dense layers start N(0, 0.01)
  with zero bias, as in the paper and in VGG (``models/vgg.py`` says why).
  The model takes whatever channel count it is given.

  ``batch_norm`` (``alexnet_bn``) puts BatchNorm (momentum 0.1 in torch's
  convention, eps 1e-5, BatchNorm_0..4) between every convolution and its
  ReLU and keeps everything else, LRN included. Without it, at 48x48 the
  share of the penultimate activations' energy that differs from face to
  face falls from 61% after conv1 to 8.5% at initialisation, and the
  recipe's SGD sits at the class prior for its first hundred steps, as
  GoogLeNet's did (issue 21, experiments/RESULTS.md).
  """

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None
  classifier_width: int = 4096
  dropout: float = 0.5  # 0 for step-by-step comparisons with PyTorch.
  small_input: bool | None = None
  small_stride: int = 1
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4:
      raise ValueError(f"AlexNet input: expected NHWC, got shape {x.shape}")
    small = self.small_input
    if small is None:
      small = min(x.shape[1:3]) < SMALL_INPUT_SIDE

    def conv_relu(y, features, kernel, strides=1, padding="SAME"):
      y = nn.Conv(features, kernel, (strides, strides), padding=padding,
                  dtype=self.dtype, kernel_init=nn.initializers.he_normal())(y)
      if self.batch_norm:
        y = nn.BatchNorm(use_running_average=not train,
                         axis_name=self.bn_axis_name, momentum=0.9,
                         epsilon=1e-5, dtype=self.dtype)(y)
      return nn.relu(y)

    x = x.astype(self.dtype)
    if small:
      x = conv_relu(x, 96, (5, 5), self.small_stride)
    else:
      x = conv_relu(x, 96, (11, 11), 4, "VALID")
    x = _overlapping_max_pool(local_response_norm(x), "pool1")
    x = local_response_norm(conv_relu(x, 256, (5, 5)))
    x = _overlapping_max_pool(x, "pool2")
    x = conv_relu(x, 384, (3, 3))
    x = conv_relu(x, 384, (3, 3))
    x = conv_relu(x, 256, (3, 3))
    x = _overlapping_max_pool(x, "pool5")
    x = x.reshape((x.shape[0], -1))
    dense_init = nn.initializers.normal(0.01)
    for _ in range(2):
      x = nn.relu(nn.Dense(self.classifier_width, dtype=self.dtype,
                           kernel_init=dense_init)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    kernel_init=dense_init)(x).astype(jnp.float32)


def adaptive_avg_pool(x: jnp.ndarray, output_size: tuple[int, int]
                      ) -> jnp.ndarray:
  """``torch.nn.AdaptiveAvgPool2d`` on NHWC.

  Window i spans rows ``floor(i * H / out)`` to ``ceil((i + 1) * H / out)``;
  the identity when the map already has the output size (torchvision's
  AlexNet at 224x224).
  """
  _, h, w, _ = x.shape
  oh, ow = output_size
  if (h, w) == (oh, ow):
    return x

  def bounds(n, out):
    return [(i * n // out, -(-(i + 1) * n // out)) for i in range(out)]

  rows = [jnp.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2))
                     for c0, c1 in bounds(w, ow)], axis=1)
          for r0, r1 in bounds(h, oh)]
  return jnp.stack(rows, axis=1)


class TorchvisionAlexNet(nn.Module):
  """torchvision's ``alexnet`` (Krizhevsky's "one weird trick" variant).

  Not the paper's network (``AlexNet``): 64-192-384-256-256 channels, an
  11x11/4 stem padded by 2, 3x3/2 max-pools without ceil mode, no LRN, an
  adaptive 6x6 average pool, and dropout *before* each hidden dense layer.
  Registered as ``alexnet_tv`` so that torchvision's ImageNet weights
  (``ferjax convert torchvision alexnet-owt-7be5be79.pth OUT``) load into
  exactly the network they were trained in. Layers: Conv_0..4 are
  ``features.0/3/6/8/10``, Dense_0..2 ``classifier.1/4/6``.
  """

  num_classes: int = 1000
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None  # No BatchNorm; accepted for a uniform API.
  classifier_width: int = 4096
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4 or min(x.shape[1:3]) < 63:
      raise ValueError(f"torchvision AlexNet input: expected NHWC of at "
                       f"least 63x63, got shape {x.shape}")

    def conv(features, kernel, stride, pad, y):
      return nn.relu(nn.Conv(features, (kernel, kernel), (stride, stride),
                             padding=((pad, pad), (pad, pad)),
                             dtype=self.dtype)(y))

    x = x.astype(self.dtype)
    x = pooling.max_pool(conv(64, 11, 4, 2, x), (3, 3), strides=(2, 2))
    x = pooling.max_pool(conv(192, 5, 1, 2, x), (3, 3), strides=(2, 2))
    x = conv(256, 3, 1, 1, conv(384, 3, 1, 1, x))
    x = pooling.max_pool(conv(256, 3, 1, 1, x), (3, 3), strides=(2, 2))
    x = adaptive_avg_pool(x, (6, 6)).reshape((x.shape[0], -1))
    for _ in range(2):
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = nn.relu(nn.Dense(self.classifier_width, dtype=self.dtype)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
