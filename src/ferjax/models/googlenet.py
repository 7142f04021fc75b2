"""GoogLeNet / Inception v1 (Szegedy et al., 2015) with its auxiliary heads."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import pooling
from ferjax.models.alexnet import adaptive_avg_pool, local_response_norm

# Below this many pixels on the shorter side the paper's /32 geometry leaves
# 4a's map too small for the auxiliary 5x5 pool, so ``small_input=None``
# switches to the lighter stem.
SMALL_INPUT_SIDE = 96

# Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION_FILTERS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(x: jnp.ndarray, features: int, kernel: int, name: str, *,
               dtype: jnp.dtype, batch_norm: bool, train: bool,
               bn_axis_name: str | None, strides: int = 1) -> jnp.ndarray:
  """Convolution padded by ``kernel // 2`` on every side, then ReLU.

  The padding is the reference Caffe model's and torchvision's. That is SAME
  at stride 1; for the strided 7x7 stem it keeps SAME's output size but pads
  3 before (SAME pads 2 before and 3 after at even sides, a grid one pixel off
  the reference's). With ``batch_norm`` the convolution has no bias and
  BatchNorm ``{name}_bn`` (torchvision's eps 1e-3, momentum 0.1 in its
  convention) comes before the ReLU.
  """
  pad = kernel // 2
  x = nn.Conv(features, (kernel, kernel), strides=(strides, strides),
              padding=((pad, pad), (pad, pad)), use_bias=not batch_norm,
              dtype=dtype, kernel_init=nn.initializers.he_normal(),
              name=name)(x)
  if batch_norm:
    x = nn.BatchNorm(use_running_average=not train, axis_name=bn_axis_name,
                     momentum=0.9, epsilon=1e-3, dtype=dtype,
                     name=f"{name}_bn")(x)
  return nn.relu(x)


def _max_pool(x: jnp.ndarray, stride: int) -> jnp.ndarray:
  # SAME equals the reference ceil-mode pooling: 112 -> 56 -> 28 -> 14 -> 7.
  return pooling.max_pool(x, (3, 3), strides=(stride, stride),
                           padding="SAME")


class Inception(nn.Module):
  """Four parallel branches (1x1; 1x1-3x3; 1x1-5x5; pool-1x1), concatenated.

  Convolutions carry the reference model's names (``1x1``, ``3x3_reduce``,
  ``3x3``, ``5x5_reduce``, ``5x5``, ``pool_proj``) for weight import.
  """

  filters: tuple[int, int, int, int, int, int]
  dtype: jnp.dtype = jnp.float32
  batch_norm: bool = False
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    c1, c3r, c3, c5r, c5, cp = self.filters

    def conv(features, kernel, name, y):
      return _conv_relu(y, features, kernel, name, dtype=self.dtype,
                        batch_norm=self.batch_norm, train=train,
                        bn_axis_name=self.bn_axis_name)

    branch1 = conv(c1, 1, "1x1", x)
    branch3 = conv(c3, 3, "3x3", conv(c3r, 1, "3x3_reduce", x))
    branch5 = conv(c5, 5, "5x5", conv(c5r, 1, "5x5_reduce", x))
    branch_pool = conv(cp, 1, "pool_proj", _max_pool(x, 1))
    return jnp.concatenate([branch1, branch3, branch5, branch_pool], axis=-1)


class AuxHead(nn.Module):
  """Training-time classifier on 4a or 4d: pool, 1x1 conv 128, 1024, classes.

  Paper geometry pools 5x5 stride 3 VALID (14x14 -> 4x4, a 2048-wide
  flatten). With ``small`` the pool is SAME and averages only real pixels, so
  the small maps of the lighter stem still give 2x2 (48x48 and 32x32 inputs).
  """

  num_classes: int
  small: bool
  dropout: float = 0.7
  dtype: jnp.dtype = jnp.float32
  batch_norm: bool = False
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    if self.small:
      x = nn.avg_pool(x, (5, 5), strides=(3, 3), padding="SAME",
                      count_include_pad=False)
    else:
      if min(x.shape[1:3]) < 5:
        raise ValueError(
            f"GoogLeNet input: the {x.shape[1]}x{x.shape[2]} map under "
            f"{self.name} is smaller than its 5x5 pool; expected "
            "small_input=None or True for inputs under "
            f"{SMALL_INPUT_SIDE}x{SMALL_INPUT_SIDE}")
      x = nn.avg_pool(x, (5, 5), strides=(3, 3), padding="VALID")
    x = _conv_relu(x, 128, 1, "conv", dtype=self.dtype,
                   batch_norm=self.batch_norm, train=train,
                   bn_axis_name=self.bn_axis_name)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name="fc")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    name="classifier")(x).astype(jnp.float32)


class GoogLeNet(nn.Module):
  """Stem, nine Inception modules, global average pool, dropout 0.4, linear.

  Paper geometry (``small_input=False``): conv 64 7x7/2, max-pool 3x3/2, LRN,
  conv 64 1x1, conv 192 3x3, LRN, max-pool 3x3/2, 3a, 3b, max-pool, 4a-4e,
  max-pool, 5a, 5b, global average pool, dropout 0.4, dense ``num_classes``.
  At 224x224 every stage matches Table 1 (112x112x64 ... 28x28x256 after 3a,
  14x14x528 after 4d, 7x7x1024 after 5b). LRN (``lrn=True``, as in the
  paper's Figure 3; torchvision drops it) uses size 5, alpha 1e-4, beta 0.75,
  k 1 like the BVLC Caffe model. LRN has no parameters, so ``lrn`` never
  changes the parameter count.

  Lighter stem (``small_input=True``, or ``None`` and the shorter side under
  ``SMALL_INPUT_SIDE``): the first max-pool is dropped, so the network
  downsamples /16 instead of /32: 48x48 reaches 3a at 12x12 and 5b at 3x3,
  32x32 reaches them at 8x8 and 2x2; the auxiliary pools become SAME (see
  ``AuxHead``). Parameters differ only in the auxiliary dense layers, whose
  input follows the map size.

  The auxiliary heads on 4a and 4d run only with ``train=True`` and sow their
  float32 logits as ``aux_logits``/``aux1`` and ``aux2``; the returned logits
  never include them. Their parameters are created by any ``init``, so a
  model initialised with ``train=False`` can still train. Stage outputs are
  sown to ``intermediates`` (``conv1``, ``pool1``, ``conv2``, ``pool2``,
  ``3a``, ``3b``, ``pool3``, ``4a`` ... ``4e``, ``pool4``, ``5a``, ``5b``,
  ``avgpool``: Table 1's rows) when that collection is mutable.

  Layers carry the BVLC model's names for weight import: ``conv1_7x7``,
  ``conv2_3x3_reduce``, ``conv2_3x3``, ``inception_3a`` ... ``inception_5b``
  (see ``Inception``), ``aux1_head``/``aux2_head`` (``conv``, ``fc``,
  ``classifier``) and ``classifier``.

  ``batch_norm`` (``googlenet_bn``) puts BatchNorm between every convolution
  and its ReLU, as torchvision's GoogLeNet and Inception v2 do; the
  convolutions then have no bias. Without it (the paper's network), He
  initialisation keeps the signal's scale through the 22 layers but not its
  dependence on the input: on FER2013 faces 95% of the pooled features'
  energy is the same for every face at initialisation (99.98% with the Caffe
  model's Xavier and bias 0.2), so SGD first learns the class prior and, on
  FER2013 with the VGG recipe, stays there (issue 21; see
  experiments/fer2013_googlenet.py).
  """

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None
  lrn: bool = True
  batch_norm: bool = False
  small_input: bool | None = None
  # The paper's rates; 0 for step-by-step comparisons with PyTorch.
  dropout: float = 0.4
  aux_dropout: float = 0.7

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4:
      raise ValueError(f"GoogLeNet input: expected NHWC, got shape {x.shape}")
    small = self.small_input
    if small is None:
      small = min(x.shape[1:3]) < SMALL_INPUT_SIDE
    # Sown only outside init so a later apply never appends to stale values.
    sow_aux = train and not self.is_initializing()

    bn = dict(dtype=self.dtype, batch_norm=self.batch_norm, train=train,
              bn_axis_name=self.bn_axis_name)
    x = x.astype(self.dtype)
    x = _conv_relu(x, 64, 7, "conv1_7x7", strides=2, **bn)
    self.sow("intermediates", "conv1", x)
    if not small:
      x = _max_pool(x, 2)
      self.sow("intermediates", "pool1", x)
    if self.lrn:
      x = local_response_norm(x, k=1.0)
    x = _conv_relu(x, 64, 1, "conv2_3x3_reduce", **bn)
    x = _conv_relu(x, 192, 3, "conv2_3x3", **bn)
    self.sow("intermediates", "conv2", x)
    if self.lrn:
      x = local_response_norm(x, k=1.0)
    x = _max_pool(x, 2)
    self.sow("intermediates", "pool2", x)

    for stage, filters in INCEPTION_FILTERS.items():
      if stage in ("4a", "5a"):
        x = _max_pool(x, 2)
        self.sow("intermediates", f"pool{int(stage[0]) - 1}", x)
      x = Inception(filters, dtype=self.dtype, batch_norm=self.batch_norm,
                    bn_axis_name=self.bn_axis_name,
                    name=f"inception_{stage}")(x, train=train)
      self.sow("intermediates", stage, x)
      if stage in ("4a", "4d") and (train or self.is_initializing()):
        aux_name = "aux1" if stage == "4a" else "aux2"
        aux = AuxHead(self.num_classes, small, dropout=self.aux_dropout,
                      dtype=self.dtype, batch_norm=self.batch_norm,
                      bn_axis_name=self.bn_axis_name,
                      name=f"{aux_name}_head")(x, train=train)
        if sow_aux:
          self.sow("aux_logits", aux_name, aux)

    x = x.mean(axis=(1, 2))
    self.sow("intermediates", "avgpool", x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    name="classifier")(x).astype(jnp.float32)


def ceil_max_pool(x: jnp.ndarray, window: int, stride: int,
                  padding: int = 0) -> jnp.ndarray:
  """``torch.nn.MaxPool2d(window, stride, padding, ceil_mode=True)``.

  Ceil mode adds a last, partial window unless it would start in the
  padding; the missing rows and columns count as -inf.
  """
  pads = []
  for n in x.shape[1:3]:
    out = -(-(n + 2 * padding - window) // stride) + 1
    if (out - 1) * stride >= n + padding:
      out -= 1
    pads.append((padding,
                 max((out - 1) * stride + window - n - padding, 0)))
  return pooling.max_pool(x, (window, window), strides=(stride, stride),
                           padding=pads)


class BasicConv(nn.Module):
  """torchvision's ``BasicConv2d``: unbiased conv, BatchNorm (eps 1e-3), ReLU."""

  features: int
  kernel: int
  stride: int = 1
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    pad = self.kernel // 2
    x = nn.Conv(self.features, (self.kernel,) * 2, (self.stride,) * 2,
                padding=((pad, pad), (pad, pad)), use_bias=False,
                dtype=self.dtype, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                     epsilon=1e-3, axis_name=self.bn_axis_name,
                     dtype=self.dtype, name="bn")(x)
    return nn.relu(x)


class TorchvisionInception(nn.Module):
  """torchvision's ``Inception``: branch3 ("5x5") is a 3x3 convolution."""

  filters: tuple[int, int, int, int, int, int]
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    c1, c3r, c3, c5r, c5, cp = self.filters

    def conv(features, kernel, name, y):
      return BasicConv(features, kernel, dtype=self.dtype,
                       bn_axis_name=self.bn_axis_name, name=name)(
                           y, train=train)

    return jnp.concatenate([
        conv(c1, 1, "branch1", x),
        conv(c3, 3, "branch2_1", conv(c3r, 1, "branch2_0", x)),
        conv(c5, 3, "branch3_1", conv(c5r, 1, "branch3_0", x)),
        conv(cp, 1, "branch4_1", ceil_max_pool(x, 3, 1, 1)),
    ], axis=-1)


class TorchvisionAuxHead(nn.Module):
  """torchvision's ``InceptionAux``: adaptive 4x4 average pool first."""

  num_classes: int
  dropout: float = 0.7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    x = adaptive_avg_pool(x, (4, 4))
    x = BasicConv(128, 1, dtype=self.dtype, bn_axis_name=self.bn_axis_name,
                  name="conv")(x, train=train).reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name="fc1")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    name="fc2")(x).astype(jnp.float32)


class TorchvisionGoogLeNet(nn.Module):
  """torchvision's ``googlenet``: Inception v1 with BatchNorm.

  Not the paper's network (``GoogLeNet``): BatchNorm after every
  convolution (no biases, no LRN), a 3x3 convolution in the "5x5" branch,
  a 2x2 fourth max-pool, ceil-mode pools, auxiliary heads that average-pool
  adaptively to 4x4, and dropout 0.2 before the classifier. Registered as
  ``googlenet_tv`` so that torchvision's ImageNet weights
  (``ferjax convert torchvision googlenet-1378be20.pth OUT``) load into
  exactly the network they were trained in. Those weights expect
  torchvision's ``transform_input``, i.e. inputs normalised as
  (x - 0.5) / 0.5, which the converter writes as the run's mean and std.
  Layers carry torchvision's names (``conv1``, ``inception3a/branch2_1``,
  ``aux1/fc1``, ``fc``; a Sequential's ``.0`` becomes ``_0``). The
  auxiliary heads (``aux_logits``) sow ``aux1_logits``/``aux2_logits`` in
  training, which the train step weighs as ``GoogLeNet``'s. At least 15x15 input; 224x224 as trained.
  """

  num_classes: int = 1000
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None
  aux_logits: bool = True
  dropout: float = 0.2
  aux_dropout: float = 0.7

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4 or min(x.shape[1:3]) < 15:
      raise ValueError(f"torchvision GoogLeNet input: expected NHWC of at "
                       f"least 15x15, got shape {x.shape}")
    sow_aux = train and not self.is_initializing()
    shared = dict(dtype=self.dtype, bn_axis_name=self.bn_axis_name)

    def conv(features, kernel, name, y, stride=1):
      return BasicConv(features, kernel, stride, name=name, **shared)(
          y, train=train)

    x = x.astype(self.dtype)
    x = ceil_max_pool(conv(64, 7, "conv1", x, stride=2), 3, 2)
    x = ceil_max_pool(conv(192, 3, "conv3", conv(64, 1, "conv2", x)), 3, 2)
    for stage, filters in INCEPTION_FILTERS.items():
      if stage == "4a":
        x = ceil_max_pool(x, 3, 2)
      if stage == "5a":
        x = ceil_max_pool(x, 2, 2)
      x = TorchvisionInception(filters, name=f"inception{stage}", **shared)(
          x, train=train)
      if (stage in ("4a", "4d") and self.aux_logits
          and (train or self.is_initializing())):
        aux_name = "aux1" if stage == "4a" else "aux2"
        aux = TorchvisionAuxHead(self.num_classes, self.aux_dropout,
                                 name=aux_name, **shared)(x, train=train)
        if sow_aux:  # Not "aux1": that is the head's own scope here.
          self.sow("aux_logits", f"{aux_name}_logits", aux)
    x = x.mean(axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    name="fc")(x).astype(jnp.float32)
