"""VGG configurations A, B, D and E (Simonyan and Zisserman, 2015)."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import pooling

# Weight layers -> convolution widths per stage; each stage ends in a max-pool.
_STAGES: dict[int, tuple[tuple[int, ...], ...]] = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


class VGG(nn.Module):
  """3x3 SAME convolutions in five pooled stages, then a 3-layer classifier.

  ``depth`` picks configuration A (11), B (13), D (16) or E (19); with
  ``batch_norm`` every convolution is followed by BatchNorm before its ReLU.
  The classifier is dense ``classifier_width``, ReLU, dropout 0.5, twice, then
  dense ``num_classes``. At 224x224x3, 1000 classes and the default width
  that is 132,863,336 / 133,047,848 / 138,357,544 / 143,667,240 parameters.

  Pools are 2x2 stride 2 with SAME padding (torch's ``ceil_mode=True``): equal
  to the paper's wherever the side is a multiple of 32 (224 -> 7x7x512), and
  otherwise they keep the last odd row and stop shrinking at 1x1, so any input
  works: 48x48 ends at 2x2x512, 32x32 at 1x1x512. There is no adaptive
  pooling; the flatten size, hence Dense_0, follows the input.

  Naming for a torchvision import: Conv_i is the i-th ``Conv2d`` in
  ``features`` (transpose its weight OIHW -> HWIO), BatchNorm_i follows Conv_i
  (weight/bias -> scale/bias, running mean/var -> ``batch_stats``), and
  Dense_0..2 are ``classifier.0/.3/.6`` (transpose; Dense_0's input rows go
  from torch's C,H,W flatten order to H,W,C). Convolutions keep their bias
  with BatchNorm, as torchvision's do. He initialisation lets the deep
  configurations train from scratch without BatchNorm. The dense layers
  start N(0, 0.01) with zero bias, as torchvision's VGG (PyTorch's default
  for the recipe's own VGG is of the same size): with flax's default
  lecun_normal, VGG-11-BN's 4096-wide penultimate activations at 48x48
  start with 11x the squared norm (950 against 85 per FER2013 image), so
  the classifier's first SGD steps at lr 0.01 were that much larger and the
  predictions swung between classes (issue 20, experiments/RESULTS.md).
  """

  num_classes: int = 7
  depth: int = 16
  batch_norm: bool = False
  classifier_width: int = 4096
  dropout: float = 0.5  # 0 for step-by-step comparisons with PyTorch.
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    if self.depth not in _STAGES:
      raise ValueError(
          f"VGG.depth: expected one of {sorted(_STAGES)}, got {self.depth}")
    if x.ndim != 4:
      raise ValueError(f"VGG input: expected NHWC, got shape {x.shape}")
    x = x.astype(self.dtype)
    for widths in _STAGES[self.depth]:
      for width in widths:
        x = nn.Conv(width, (3, 3), padding="SAME", dtype=self.dtype,
                    kernel_init=nn.initializers.he_normal())(x)
        if self.batch_norm:
          x = nn.BatchNorm(use_running_average=not train,
                           axis_name=self.bn_axis_name, momentum=0.9,
                           epsilon=1e-5, dtype=self.dtype)(x)
        x = nn.relu(x)
      x = pooling.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    x = x.reshape((x.shape[0], -1))
    dense_init = nn.initializers.normal(0.01)
    for _ in range(2):
      x = nn.relu(nn.Dense(self.classifier_width, dtype=self.dtype,
                           kernel_init=dense_init)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    kernel_init=dense_init)(x).astype(jnp.float32)
