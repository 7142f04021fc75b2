"""SVMs on a face's geometry: FaceMesh's landmarks, not its pixels.

The input is the geometric descriptor of ``landmarks.action_units`` (the
action-unit measures and the Procrustes-aligned mesh), standardised with
the training split's statistics; ``kernel='linear'`` scores it with one
linear map per class, ``'rbf'`` first maps it to Nystrom features of the
Gaussian kernel exp(-gamma |a - b|^2) (Williams and Seeger, 2001):
k(x, z_j) for ``centres`` training descriptors z_j, times K_zz^(-1/2), whose
inner products approximate the kernel, so the same linear SVM on them is an
RBF SVM. (Random Fourier features, tried first, trailed scikit-learn's SVC
by 1.5-5 points on the test problems at 1,024-2,048 features; Nystrom at
512 centres came within 1.) Both are one-vs-rest multi-class SVMs with the squared
hinge loss and penalty ``c`` (scikit-learn's LinearSVC defaults), fitted on
the whole split at once by ``train.geometry`` (L-BFGS, Optax), not by SGD.

Only ``svm`` is fitted. The other parameters are set from the training
split by ``train.geometry`` and kept with the model: ``mean`` and ``std``
of the descriptors and ``reference``, the mean shape (468, 2) the meshes are aligned to, and for
'rbf' the ``centres`` and their ``projection`` K_zz^(-1/2).
"""

import jax.numpy as jnp
import flax.linen as nn

from ferjax.landmarks import facemesh

KERNELS = ("linear", "rbf")
FITTED = "svm"


def rbf(a: jnp.ndarray, b: jnp.ndarray, gamma: float) -> jnp.ndarray:
  """exp(-gamma |a_i - b_j|^2) of rows (N, D) and (M, D): (N, M)."""
  sq = (jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :]
        - 2.0 * a @ b.T)
  return jnp.exp(-gamma * jnp.maximum(sq, 0.0))


class GeometrySVM(nn.Module):
  """Descriptors (B, D) -> (B, num_classes) one-vs-rest SVM scores."""

  num_classes: int = 7
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None  # The model contract; nothing to sync.
  kernel: str = "linear"
  c: float = 1.0
  centres: int = 1024
  gamma: float | None = None  # None: scikit-learn's 'scale', 1 / D.

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool = False) -> jnp.ndarray:
    del train  # No dropout, no batch statistics.
    if self.kernel not in KERNELS:
      raise ValueError(f"config.model.kwargs.kernel: expected one of "
                       f"{', '.join(KERNELS)}, got {self.kernel!r}")
    if x.ndim != 2:
      raise ValueError(f"GeometrySVM reads landmark descriptors (batch, "
                       f"features), got an input of shape {x.shape}")
    d = x.shape[-1]
    self.param("reference", nn.initializers.zeros,
               (facemesh.NUM_POINTS, 2), jnp.float32)
    mean = self.param("mean", nn.initializers.zeros, (d,), jnp.float32)
    std = self.param("std", nn.initializers.ones, (d,), jnp.float32)
    h = (x.astype(jnp.float32) - mean) / std
    if self.kernel == "rbf":
      m = self.centres
      z = self.param("centres", nn.initializers.zeros, (m, d), jnp.float32)
      projection = self.param("projection", nn.initializers.zeros, (m, m),
                              jnp.float32)
      h = rbf(h, z, self.gamma or 1.0 / d) @ projection
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    name=FITTED)(h).astype(jnp.float32)
