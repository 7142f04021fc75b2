"""Where a model looked: Grad-CAM, and plain gradient saliency as fallback.

Grad-CAM (Selvaraju et al., 2017) weighs the channels of a convolutional
block's activations A by the spatial mean of the class score's gradient with
respect to them, ``relu(sum_c mean(dS/dA_c) * A_c)``, upsampled to the
input. The block is found, not named per family: the last Inception block
where there is one (GoogLeNet), else the last convolution or its BatchNorm
(the layer before its ReLU; the ReLU is applied here). Its output and
gradient are read by intercepting that module's call (``flax.linen.
intercept_methods``), so the models carry no saliency code. Models without
such a block, or whose scores also depend on features it does not see
(fusion models, ``lbp_linear``), get the gradient of the class score with
respect to the input pixels (max |gradient| over channels).

All maps are (N, H, W) float32 in [0, 1] at the model input's size, each
min-max normalised (a constant map becomes zero).
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ferjax.models import googlenet
from ferjax.models.fusion import Fused

_BLOCKS = (googlenet.Inception, googlenet.TorchvisionInception)
_LAYERS = (nn.Conv, nn.BatchNorm)


@dataclasses.dataclass(frozen=True)
class Saliency:
  """Maps (N, H, W) in [0, 1], the class each explains, and how they were
  made: 'grad_cam' at ``layer`` (a module path), or 'gradient'."""

  maps: jax.Array
  classes: jax.Array
  method: str
  layer: str | None = None


def _is_call(context: Any) -> bool:
  return context.method_name == "__call__"


def gradcam_layer(model: nn.Module, variables: Any,
                  x: jax.Array) -> tuple[str, ...] | None:
  """The path of the module whose output Grad-CAM uses, or None where the
  gradient fallback applies (no spatial block, or a fusion model)."""
  if isinstance(model, Fused):
    return None
  blocks, layers = [], []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if (_is_call(context) and getattr(out, "ndim", 0) == 4
        and out.shape[1] * out.shape[2] > 0):
      if isinstance(context.module, _BLOCKS):
        blocks.append(context.module.scope.path)
      elif isinstance(context.module, _LAYERS):
        layers.append(context.module.scope.path)
    return out

  with nn.intercept_methods(record):
    jax.eval_shape(lambda v, i: model.apply(v, i, train=False), variables, x)
  found = blocks or layers
  return tuple(found[-1]) if found else None


def _normalised(maps: jax.Array) -> jax.Array:
  """Each map shifted to 0 and scaled to 1 (min-max, as the reference
  implementations do): a uniform floor, such as the biases' response to a
  plain background, is no evidence."""
  low = maps.min(axis=(1, 2), keepdims=True)
  span = maps.max(axis=(1, 2), keepdims=True) - low
  return jnp.where(span > 0, (maps - low) / jnp.where(span > 0, span, 1), 0.0)


def _chosen(logits: jax.Array, classes: jax.Array | None) -> jax.Array:
  if classes is None:
    return jax.lax.stop_gradient(logits.argmax(-1))
  return jnp.asarray(classes, jnp.int32)


def grad_cam(model: nn.Module, variables: Any, x: jax.Array,
             classes: Sequence[int] | jax.Array | None = None, *,
             layer: tuple[str, ...]) -> Saliency:
  """Grad-CAM of ``classes`` (default: each image's top class) at the
  module ``layer`` (``gradcam_layer``) for model inputs ``x`` (N, H, W, C)."""
  x = jnp.asarray(x)

  def run(delta):
    seen = {}

    def perturb(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if _is_call(context) and tuple(context.module.scope.path) == layer:
        out = out + delta.astype(out.dtype)
        seen["a"] = out
      return out

    with nn.intercept_methods(perturb):
      logits = model.apply(variables, x, train=False)
    chosen = _chosen(logits, classes)
    score = jnp.take_along_axis(logits, chosen[:, None], axis=1).sum()
    return score, (seen["a"], chosen)

  shape = jax.eval_shape(lambda d: run(d)[1][0],
                         jax.ShapeDtypeStruct((), jnp.float32))
  grads, (acts, chosen) = jax.grad(run, has_aux=True)(
      jnp.zeros(shape.shape, jnp.float32))
  weights = grads.astype(jnp.float32).mean(axis=(1, 2))
  cam = jax.nn.relu(jnp.einsum("nhwc,nc->nhw",
                               jax.nn.relu(acts.astype(jnp.float32)), weights))
  cam = jax.image.resize(cam, (cam.shape[0], *x.shape[1:3]), "bilinear")
  return Saliency(_normalised(jax.nn.relu(cam)), chosen, "grad_cam",
                  "/".join(layer))


def gradient_saliency(model: nn.Module, variables: Any, x: jax.Array,
                      classes: Sequence[int] | jax.Array | None = None
                      ) -> Saliency:
  """max over channels of |d score / d input| of ``classes`` (default: each
  image's top class)."""
  x = jnp.asarray(x, jnp.float32)

  def score(inputs):
    logits = model.apply(variables, inputs, train=False)
    chosen = _chosen(logits, classes)
    return (jnp.take_along_axis(logits, chosen[:, None], axis=1).sum(),
            chosen)

  grads, chosen = jax.grad(score, has_aux=True)(x)
  return Saliency(_normalised(jnp.abs(grads).max(axis=-1)), chosen,
                  "gradient")


def explain(model: nn.Module, variables: Any, x: jax.Array,
            classes: Sequence[int] | jax.Array | None = None) -> Saliency:
  """Grad-CAM where the model has a convolutional block, else the input
  gradient: the saliency maps of ``classes`` for model inputs ``x``."""
  layer = gradcam_layer(model, variables, x)
  if layer is None:
    return gradient_saliency(model, variables, x, classes)
  return grad_cam(model, variables, x, classes, layer=layer)
