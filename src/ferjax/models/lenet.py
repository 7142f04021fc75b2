"""LeNet-5 exactly as the review specifies it (32x32x3 in, 7-way out)."""

import flax.linen as nn
import jax.numpy as jnp

from ferjax.models import pooling


class LeNet5(nn.Module):
  """conv6 5x5 -> pool 2/2 -> conv16 5x5 -> pool 2/2 -> dense 120 -> classes.

  Convolutions are VALID, so the flatten size follows the input: 5x5x16 at the
  review's 32x32 and 9x9x16 at FER2013's native 48x48. With 3 input channels
  and 7 classes the model has 51,839 parameters. Softmax lives in the loss.
  """

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None  # No BatchNorm; accepted for a uniform API.

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    del train  # No dropout or BatchNorm in the review's LeNet-5.
    if min(x.shape[1:3]) < 16:
      raise ValueError(f"LeNet-5 needs inputs of at least 16x16, got "
                       f"{x.shape[1]}x{x.shape[2]}")
    x = x.astype(self.dtype)
    x = nn.relu(nn.Conv(6, (5, 5), padding="VALID", dtype=self.dtype)(x))
    x = pooling.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(16, (5, 5), padding="VALID", dtype=self.dtype)(x))
    x = pooling.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(120, dtype=self.dtype)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)
