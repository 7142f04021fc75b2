"""A compact ResNet for 40-48 pixel faces: ferjax's default deployed model.

Not one of the review's four families. It exists because the review's
networks are either too weak (LeNet-5, 51% on FER2013) or too slow to train
on a CPU, while a user's first contact with ferjax is its bundled model.
Dense 3x3 convolutions only: XLA:CPU runs depthwise convolutions several
times slower per FLOP: a mini-Xception (0.078 GFLOP per image) trained at
21 images/s here, a ResNet of 2.6 times its FLOPs at 47 (issue 36).
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


class BasicBlock(nn.Module):
  """Two 3x3 conv-BN layers and an identity (or 1x1 projection) shortcut.

  The last BatchNorm's scale starts at one, not at zero as Goyal et al.
  (2017) do for deep stacks: with one block per stage the net at zero init
  is a chain of stride-2 1x1 projections that sees 1/64 of the stem's
  pixels, and it fit 1,024 FER2013 faces to 43% in 15 epochs against 100%
  with ones (measured, issue 36).
  """

  width: int
  stride: int = 1
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    def norm():
      return nn.BatchNorm(use_running_average=not train,
                          axis_name=self.bn_axis_name, momentum=0.9,
                          epsilon=1e-5, dtype=self.dtype)

    def conv(width, kernel, stride):
      pad = kernel // 2
      return nn.Conv(width, (kernel, kernel), strides=(stride, stride),
                     padding=((pad, pad), (pad, pad)), use_bias=False,
                     dtype=self.dtype,
                     kernel_init=nn.initializers.he_normal())

    y = nn.relu(norm()(conv(self.width, 3, self.stride)(x)))
    y = norm()(conv(self.width, 3, 1)(y))
    if self.stride != 1 or x.shape[-1] != self.width:
      x = norm()(conv(self.width, 1, self.stride)(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """3x3 stem, stages of basic blocks, global average pool, dropout, dense.

  ``widths`` gives each stage's channels and ``blocks`` its block count; the
  first stage keeps the input resolution, each later one halves it. For
  grey 40x40 input and 7 classes (``ferjax models --input-shape 40,40,1``):
  ``resnet_fer_small`` (widths 16-32-64-128) 308,151 parameters and 46
  MFLOPs per image, ``resnet_fer_mid`` (24-48-96-192, the bundled model)
  691,471 and 102, ``resnet_fer`` (32-64-128-256) 1,227,623 and 180; one
  block per stage in each. Works on any input of at least 8x8.
  """

  num_classes: int = 7
  widths: Sequence[int] = (32, 64, 128, 256)
  blocks: Sequence[int] = (1, 1, 1, 1)
  dropout: float = 0.2  # 0 for step-by-step comparisons with PyTorch.
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4:
      raise ValueError(f"ResNet input: expected NHWC, got shape {x.shape}")
    if len(self.widths) != len(self.blocks) or not self.widths:
      raise ValueError(
          f"ResNet: widths {tuple(self.widths)} and blocks "
          f"{tuple(self.blocks)} must be non-empty and of one length")
    if min(x.shape[1:3]) < 2 ** (len(self.widths) - 1):
      raise ValueError(
          f"ResNet with {len(self.widths)} stages needs inputs of at least "
          f"{2 ** (len(self.widths) - 1)} pixels, got "
          f"{x.shape[1]}x{x.shape[2]}")
    x = x.astype(self.dtype)
    x = nn.Conv(self.widths[0], (3, 3), padding=((1, 1), (1, 1)),
                use_bias=False, dtype=self.dtype,
                kernel_init=nn.initializers.he_normal())(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train,
                             axis_name=self.bn_axis_name, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype)(x))
    for stage, (width, count) in enumerate(zip(self.widths, self.blocks)):
      for i in range(count):
        stride = 2 if stage > 0 and i == 0 else 1
        x = BasicBlock(width, stride, dtype=self.dtype,
                       bn_axis_name=self.bn_axis_name)(x, train=train)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
