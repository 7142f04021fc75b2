"""Model families: sizes from the papers, the shared contract, and training."""

import functools
import math
import pathlib

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax.commands import models as models_command
from ferjax import config as config_lib
from ferjax import models
from ferjax.models import summary
from ferjax.models.alexnet import local_response_norm
from ferjax.models.pooling import max_pool


_NUM_CLASSES = 7
_EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"
# FER2013's native size and the review's; _full_shape gives the papers'.
_SMALL_SHAPES = ((48, 48, 1), (32, 32, 3))
_MUTABLE = ["batch_stats", "aux_logits"]
_slow = pytest.mark.slow


def _full_shape(name: str) -> tuple[int, int, int]:
  return (227, 227, 3) if name == "alexnet" else (224, 224, 3)


def _abstract_variables(model, shape, batch=1):
  x = jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
  return jax.eval_shape(model.init, jax.random.key(0), x), x


def _jit_init(model):
  """``model.init`` at XLA's lowest CPU optimisation level.

  A real init compiles one RNG kernel per parameter, which dominates these
  small runs at the default level; at level 0 it compiles several times
  faster, and running it stays cheap.
  """
  return jax.jit(model.init,
                 compiler_options={"xla_backend_optimization_level": 0})


def _count(tree) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def _numpy_variables(model, x, seed):
  """He-scaled random weights without ``model.init``.

  A real init compiles one RNG kernel per parameter (about half a minute for
  GoogLeNet on a shared CPU); the behaviour tests only need some weights.
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)

  def fill(path, leaf):
    key = path[-1].key
    if key == "kernel":
      std = math.sqrt(2.0 / math.prod(leaf.shape[:-1]))
      return jnp.asarray(std * rng.standard_normal(leaf.shape, np.float32))
    if key in ("scale", "var"):
      return jnp.ones(leaf.shape, jnp.float32)
    return jnp.asarray(0.1 * rng.standard_normal(leaf.shape, np.float32))

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _images(shape, batch, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.standard_normal((batch, *shape), np.float32))


# --- sizes ----------------------------------------------------------------


@pytest.mark.parametrize("name, shape, classes, expected", [
    ("lenet5", (32, 32, 3), 7, 51_839),
    ("alexnet", (227, 227, 3), 1000, 62_378_344),
    # BatchNorm's scale and bias on the 96 + 256 + 384 + 384 + 256 channels.
    ("alexnet_bn", (227, 227, 3), 1000, 62_378_344 + 2 * 1_376),
    ("vgg11", (224, 224, 3), 1000, 132_863_336),
    ("vgg13", (224, 224, 3), 1000, 133_047_848),
    ("vgg16", (224, 224, 3), 1000, 138_357_544),
    ("vgg19", (224, 224, 3), 1000, 143_667_240),
    # torchvision's *_bn counts: BatchNorm adds a scale and a bias per channel.
    ("vgg11_bn", (224, 224, 3), 1000, 132_868_840),
    ("vgg13_bn", (224, 224, 3), 1000, 133_053_736),
    ("vgg16_bn", (224, 224, 3), 1000, 138_365_992),
    ("vgg19_bn", (224, 224, 3), 1000, 143_678_248),
])
def test_parameter_counts_match_the_papers(name, shape, classes, expected):
  model = models.create_model(name, num_classes=classes)
  variables, _ = _abstract_variables(model, shape)
  assert _count(variables["params"]) == expected


@pytest.mark.parametrize("name", ["resnet_fer_small", "resnet_fer_mid",
                                  "resnet_fer"])
def test_resnet_parameters_follow_its_blocks(name):
  """Bias-free 3x3 convolutions, BatchNorm scale and bias, 1x1 projections
  where a stage changes width, one dense layer after the mean pool."""
  model = models.create_model(name, num_classes=7)
  expected = 9 * 1 * model.widths[0] + 2 * model.widths[0]
  channels = model.widths[0]
  for width, count in zip(model.widths, model.blocks):
    for _ in range(count):
      expected += 9 * channels * width + 9 * width * width + 4 * width
      if channels != width:
        expected += channels * width + 2 * width
      channels = width
  expected += channels * 7 + 7
  variables, _ = _abstract_variables(model, (40, 40, 1))
  assert _count(variables["params"]) == expected


def test_googlenet_parameters_follow_table1():
  # (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), Table 1.
  table = [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64),
           (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64),
           (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
           (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128),
           (384, 192, 384, 48, 128, 128)]

  def conv(k, cin, cout):  # Also a dense layer with k=1.
    return k * k * cin * cout + cout

  expected = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
  channels, aux_inputs = 192, []
  for i, (c1, c3r, c3, c5r, c5, cp) in enumerate(table):
    expected += (conv(1, channels, c1) + conv(1, channels, c3r)
                 + conv(3, c3r, c3) + conv(1, channels, c5r)
                 + conv(5, c5r, c5) + conv(1, channels, cp))
    channels = c1 + c3 + c5 + cp
    if i in (2, 5):  # 4a and 4d feed the auxiliary classifiers.
      aux_inputs.append(channels)
  expected += conv(1, channels, 1000)  # The final linear layer.
  for cin in aux_inputs:
    expected += conv(1, cin, 128) + conv(1, 4 * 4 * 128, 1024)
    expected += conv(1, 1024, 1000)
  model = models.create_model("googlenet", num_classes=1000)
  variables, _ = _abstract_variables(model, (224, 224, 3))
  assert _count(variables["params"]) == expected


def test_googlenet_stages_match_table1():
  model = models.create_model("googlenet", num_classes=1000)
  variables, x = _abstract_variables(model, (224, 224, 3))
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  shapes = {k: v[0].shape[1:] for k, v in state["intermediates"].items()}
  assert shapes == {
      "conv1": (112, 112, 64), "pool1": (56, 56, 64),
      "conv2": (56, 56, 192), "pool2": (28, 28, 192),
      "3a": (28, 28, 256), "3b": (28, 28, 480), "pool3": (14, 14, 480),
      "4a": (14, 14, 512), "4b": (14, 14, 512), "4c": (14, 14, 512),
      "4d": (14, 14, 528), "4e": (14, 14, 832), "pool4": (7, 7, 832),
      "5a": (7, 7, 832), "5b": (7, 7, 1024), "avgpool": (1024,)}


@pytest.mark.parametrize("name", models.MODEL_NAMES)
@pytest.mark.parametrize("shape", [*_SMALL_SHAPES, "full"])
def test_output_shapes_in_both_modes(name, shape):
  if name.endswith("_tv") and shape != "full":
    pytest.skip("torchvision's networks keep their own geometry (AlexNet "
                "needs 63x63); fine-tuning resizes faces to 224x224")
  shape = _full_shape(name) if shape == "full" else shape
  model = models.create_model(name, num_classes=_NUM_CLASSES)
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  logits, variables = jax.eval_shape(model.init_with_output,
                                     jax.random.key(0), x)
  train_logits, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=_MUTABLE,
                               rngs={"dropout": jax.random.key(1)}),
      variables, x)
  for out in (logits, train_logits):
    assert (out.shape, out.dtype) == ((2, _NUM_CLASSES), jnp.float32)
  aux = state.get("aux_logits", {})
  assert sorted(aux) == {"googlenet": ["aux1", "aux2"],
                         "googlenet_bn": ["aux1", "aux2"], "googlenet_tv": [
                             "aux1_logits", "aux2_logits"]}.get(name, [])
  for (out,) in aux.values():
    assert (out.shape, out.dtype) == ((2, _NUM_CLASSES), jnp.float32)


@pytest.mark.parametrize("name, shape, kernel_path, fan_in", [
    # AlexNet's small geometry: 5x5 stride-1 conv1, three 3x3/2 pools.
    ("alexnet", (48, 48, 1), ("Dense_0", "kernel"), 5 * 5 * 256),
    ("alexnet", (32, 32, 3), ("Dense_0", "kernel"), 3 * 3 * 256),
    ("alexnet", (48, 48, 1), ("Conv_0", "kernel"), 5 * 5 * 1),
    # VGG's ceil-mode pools: 48 -> 24 -> 12 -> 6 -> 3 -> 2, 32 -> ... -> 1.
    ("vgg16", (48, 48, 1), ("Dense_0", "kernel"), 2 * 2 * 512),
    ("vgg16", (32, 32, 3), ("Dense_0", "kernel"), 512),
    # GoogLeNet's lighter stem: 4a at 6x6 (48) or 4x4 (32), SAME aux pool.
    ("googlenet", (48, 48, 1), ("aux1_head", "fc", "kernel"), 2 * 2 * 128),
    ("googlenet", (32, 32, 3), ("aux2_head", "fc", "kernel"), 2 * 2 * 128),
])
def test_small_input_geometry_is_as_documented(name, shape, kernel_path,
                                               fan_in):
  model = models.create_model(name, num_classes=_NUM_CLASSES)
  variables, _ = _abstract_variables(model, shape)
  kernel = functools.reduce(lambda t, k: t[k], kernel_path, variables["params"])
  assert math.prod(kernel.shape[:-1]) == fan_in


def test_alexnet_small_stride_downsamples_early_for_a_fifth_of_the_flops():
  """fer2013_alexnet.py's small_stride=2: 48 -> 24 -> 11 -> 5 -> 2."""
  config = config_lib.load_config(f"{_EXPERIMENTS}/fer2013_alexnet.py")
  assert config.model.name == "alexnet_bn"
  paper = config_lib.load_config(
      f"{_EXPERIMENTS}/fer2013_alexnet.py:bn=False,small_stride=1")
  assert (paper.model.name, dict(paper.model.kwargs)) == ("alexnet", {})
  model = models.create_model("alexnet", num_classes=_NUM_CLASSES,
                              **config.model.kwargs)
  variables, _ = _abstract_variables(model, (48, 48, 1))
  assert variables["params"]["Dense_0"]["kernel"].shape[0] == 2 * 2 * 256
  flops = {k: summary.model_summary("alexnet", (48, 48, 1), _NUM_CLASSES,
                                    kwargs={"small_stride": k})["flops"]
           for k in (1, 2)}
  assert 0.15 < flops[2] / flops[1] < 0.25
  with pytest.raises(config_lib.ConfigError, match="small_stride"):
    config_lib.load_config(f"{_EXPERIMENTS}/fer2013_alexnet.py:small_stride=4")


def test_googlenet_bn_keeps_pooled_features_dependent_on_the_input():
  """Issue 21: without BatchNorm the pooled features barely depend on x."""
  x = jax.random.normal(jax.random.key(1), (16, 48, 48, 1))
  share = {}
  for name in ("googlenet", "googlenet_bn"):
    model = models.create_model(name, num_classes=_NUM_CLASSES)
    variables = model.init(jax.random.key(0), x)
    _, state = model.apply(variables, x, train=True, rngs={
        "dropout": jax.random.key(2)}, mutable=_MUTABLE + ["intermediates"])
    pooled = np.asarray(state["intermediates"]["avgpool"][0])
    centred = pooled - pooled.mean(0)
    share[name] = float(np.sum(centred ** 2) / np.sum(pooled ** 2))
  assert share["googlenet"] < 0.15
  assert share["googlenet_bn"] > 2 * share["googlenet"]
  bn = variables["params"]["inception_3a"]
  assert "bias" not in bn["1x1"] and "1x1_bn" in bn


@pytest.mark.parametrize("shape, small, stage", [
    ((48, 48, 1), None, {"5b": (3, 3, 1024), "3a": (12, 12, 256)}),
    ((32, 32, 3), None, {"5b": (2, 2, 1024), "3a": (8, 8, 256)}),
    ((224, 224, 3), True, {"5b": (14, 14, 1024), "pool1": None}),
])
def test_googlenet_small_input_stages(shape, small, stage):
  model = models.create_model("googlenet", num_classes=_NUM_CLASSES,
                              small_input=small)
  variables, x = _abstract_variables(model, shape)
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  shapes = {k: v[0].shape[1:] for k, v in state["intermediates"].items()}
  for key, expected in stage.items():
    assert shapes.get(key) == expected


@pytest.mark.parametrize("name, shape, kwargs, match", [
    ("alexnet", (12, 12, 1), {}, "AlexNet input.*at least 15x15"),
    ("alexnet", (48, 48, 1), {"small_input": False}, "AlexNet input"),
    ("googlenet", (48, 48, 1), {"small_input": False}, "GoogLeNet input"),
    ("vgg11", (32, 32, 3), {"depth": 12}, r"VGG\.depth.*11, 13, 16, 19"),
    ("vgg11", (32, 32), {}, "VGG input: expected NHWC"),
])
def test_unusable_configurations_are_refused(name, shape, kwargs, match):
  model = models.create_model(name, num_classes=_NUM_CLASSES, **kwargs)
  with pytest.raises(ValueError, match=match):
    _abstract_variables(model, shape)


def test_small_input_auto_switches_below_96_pixels():
  model = models.create_model("alexnet", num_classes=_NUM_CLASSES)
  for side, conv1 in ((95, (5, 5)), (96, (11, 11))):
    variables, _ = _abstract_variables(model, (side, side, 3))
    assert variables["params"]["Conv_0"]["kernel"].shape[:2] == conv1


@pytest.mark.parametrize("name", ["alexnet", "vgg11_bn", "googlenet"])
def test_bfloat16_computes_in_bfloat16_but_returns_float32(name):
  model = models.create_model(name, num_classes=_NUM_CLASSES,
                              dtype=jnp.bfloat16)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  logits, variables = jax.eval_shape(model.init_with_output,
                                     jax.random.key(0), x)
  assert logits.dtype == jnp.float32
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {
      jnp.dtype(jnp.float32)}
  _, state = jax.eval_shape(
      lambda v, x: model.apply(
          v, x, capture_intermediates=lambda m, _: isinstance(m, nn.Conv),
          mutable=["intermediates"]), variables, x)
  conv_outputs = [leaf for path, leaf in
                  jax.tree_util.tree_leaves_with_path(state)
                  if path[-2].key == "__call__"]  # Not GoogLeNet's own sows.
  assert conv_outputs
  assert {leaf.dtype for leaf in conv_outputs} == {jnp.dtype(jnp.bfloat16)}


# --- layers ---------------------------------------------------------------


def _torch_lrn(a, size, alpha, beta, k):
  """torch.nn.LocalResponseNorm's documented formula, channel by channel."""
  c = a.shape[-1]
  out = np.empty_like(a)
  for i in range(c):
    lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
    norm = k + alpha / size * np.sum(a[..., lo:hi] ** 2, axis=-1)
    out[..., i] = a[..., i] / norm ** beta
  return out


@pytest.mark.parametrize("size, alpha, beta, k", [
    (5, 1e-4, 0.75, 2.0), (4, 0.5, 0.6, 1.0), (1, 2.0, 1.0, 0.5)])
def test_local_response_norm_has_torch_semantics(size, alpha, beta, k):
  a = np.random.default_rng(0).normal(0, 3, (2, 3, 3, 9)).astype(np.float32)
  got = local_response_norm(jnp.asarray(a), size=size, alpha=alpha,
                            beta=beta, k=k)
  np.testing.assert_allclose(got, _torch_lrn(a, size, alpha, beta, k),
                             rtol=1e-5, atol=1e-6)


def test_local_response_norm_keeps_dtype():
  x = jnp.ones((1, 2, 2, 6), jnp.bfloat16)
  assert local_response_norm(x).dtype == jnp.bfloat16


# Every pooling the families use, at the map sizes they meet (odd sides too).
_POOLS = [((2, 2), (2, 2), "VALID", 28), ((2, 2), (2, 2), "VALID", 9),
          ((2, 2), (2, 2), "SAME", 48), ((2, 2), (2, 2), "SAME", 3),
          ((3, 3), (2, 2), "VALID", 23), ((3, 3), (2, 2), "SAME", 24),
          ((3, 3), (2, 2), "SAME", 3), ((3, 3), (1, 1), "SAME", 6)]


@pytest.mark.parametrize("window, strides, padding, side", _POOLS)
def test_max_pool_lowering_equals_flax_values_and_gradients(
    window, strides, padding, side):
  # Continuous random inputs have no ties, where the two gradients may differ.
  x = jax.random.normal(jax.random.key(side), (2, side, side + 1, 3))
  ref = functools.partial(nn.max_pool, window_shape=window, strides=strides,
                          padding=padding)
  ours = functools.partial(max_pool, window_shape=window, strides=strides,
                           padding=padding)
  np.testing.assert_array_equal(ours(x), ref(x))
  cotangent = jax.random.normal(jax.random.key(1), ref(x).shape)

  def grad(pool):
    return jax.grad(lambda v: (pool(v) * cotangent).sum())(x)

  np.testing.assert_allclose(grad(ours), grad(ref), rtol=0, atol=1e-6)


def test_max_pool_lowering_keeps_dtype():
  x = jnp.ones((1, 4, 4, 2), jnp.bfloat16)
  assert max_pool(x, (3, 3), strides=(2, 2), padding="SAME").dtype == (
      jnp.bfloat16)


# --- behaviour ------------------------------------------------------------


def _build_forwards(name: str):
  """Random weights, a tiny batch and jitted train/eval forwards of ``name``.

  Tiny inputs and classifiers keep this cheap; the behaviour under test does
  not depend on either.
  """
  kwargs = {} if name == "googlenet" else {"classifier_width": 256}
  model = models.create_model(name, num_classes=_NUM_CLASSES, **kwargs)
  x = _images((16, 16, 3), batch=2)
  variables = _numpy_variables(model, x, seed=0)
  train = jax.jit(lambda v, x, key: model.apply(
      v, x, train=True, rngs={"dropout": key}, mutable=_MUTABLE))
  evaluate = jax.jit(lambda v, x: model.apply(v, x))
  return variables, x, train, evaluate


@pytest.fixture(scope="module")
def forwards():
  """``name -> _build_forwards(name)``, compiled once per test module."""
  return functools.cache(_build_forwards)


@pytest.mark.parametrize(
    "name", ["alexnet", "vgg11_bn", pytest.param("googlenet", marks=_slow)])
def test_dropout_is_active_only_in_training(name, forwards):
  variables, x, train, evaluate = forwards(name)
  out_a, _ = train(variables, x, jax.random.key(1))
  out_b, _ = train(variables, x, jax.random.key(2))
  out_a_again, _ = train(variables, x, jax.random.key(1))
  assert not np.allclose(out_a, out_b)
  np.testing.assert_array_equal(out_a, out_a_again)
  np.testing.assert_array_equal(evaluate(variables, x), evaluate(variables, x))


def test_batch_norm_statistics_change_only_in_training(forwards):
  variables, x, train, evaluate = forwards("vgg11_bn")
  _, state = train(variables, x, jax.random.key(1))
  old, new = variables["batch_stats"], state["batch_stats"]
  assert jax.tree_util.tree_structure(old) == jax.tree_util.tree_structure(new)
  for before, after in zip(jax.tree_util.tree_leaves(old),
                           jax.tree_util.tree_leaves(new)):
    assert not np.allclose(before, after)
  # Eval runs without a mutable collection (it would raise if BatchNorm tried
  # to write one) and depends on the running statistics it is given.
  updated = {**variables, "batch_stats": new}
  assert not np.allclose(evaluate(variables, x), evaluate(updated, x))


def _without_aux_heads(variables):
  params = {k: v for k, v in variables["params"].items()
            if k not in ("aux1_head", "aux2_head")}
  return {**variables, "params": params}


def test_googlenet_aux_heads_exist_only_in_training():
  model = models.create_model("googlenet", num_classes=_NUM_CLASSES)
  variables, x = _abstract_variables(model, (32, 32, 3), batch=2)
  # Any init creates the heads, so a model initialised for eval can train.
  assert {"aux1_head", "aux2_head"} <= set(variables["params"])
  assert set(variables) == {"params"}
  # Eval neither sows aux logits nor touches the heads' parameters ...
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["aux_logits"]),
      _without_aux_heads(variables), x)
  assert "aux_logits" not in state
  # ... while training needs them.
  with pytest.raises(flax.errors.ScopeParamNotFoundError, match="aux1_head"):
    jax.eval_shape(lambda v, x: model.apply(
        v, x, train=True, rngs={"dropout": jax.random.key(0)},
        mutable=["aux_logits"]), _without_aux_heads(variables), x)


@_slow
def test_googlenet_aux_heads_change_training_loss_only(forwards):
  variables, x, train, evaluate = forwards("googlenet")
  params = dict(variables["params"])
  for head in ("aux1_head", "aux2_head"):
    params[head] = jax.tree_util.tree_map(lambda p: p * 1.5 + 0.1,
                                          params[head])
  perturbed = {**variables, "params": params}
  labels = jnp.arange(x.shape[0]) % _NUM_CLASSES

  def train_loss(v):
    logits, state = train(v, x, jax.random.key(3))
    aux = [z for (z,) in state["aux_logits"].values()]
    loss = sum(0.3 * _cross_entropy(z, labels) for z in aux)
    return logits, loss + _cross_entropy(logits, labels)

  logits, loss = train_loss(variables)
  perturbed_logits, perturbed_loss = train_loss(perturbed)
  np.testing.assert_array_equal(logits, perturbed_logits)
  assert abs(float(loss - perturbed_loss)) > 1e-3
  np.testing.assert_array_equal(evaluate(variables, x),
                                evaluate(perturbed, x))


# --- initialisation and training -------------------------------------------

@pytest.mark.parametrize("name, kwargs", [
    ("lenet5", {}),
    pytest.param("alexnet", {"classifier_width": 64}, marks=_slow),
    pytest.param("vgg11_bn", {}, marks=_slow),
    pytest.param("googlenet", {}, marks=_slow),
])
def test_init_is_deterministic_for_a_seed(name, kwargs):
  model = models.create_model(name, num_classes=_NUM_CLASSES, **kwargs)
  init = _jit_init(model)
  x = jnp.zeros((1, 32, 32, 3))
  first, again, other = (init(jax.random.key(s), x) for s in (0, 0, 1))
  jax.tree_util.tree_map(np.testing.assert_array_equal, first, again)

  def kernels(variables):
    return [leaf for path, leaf in
            jax.tree_util.tree_leaves_with_path(variables["params"])
            if path[-1].key == "kernel"]

  for a, b in zip(kernels(first), kernels(other)):
    assert not np.allclose(a, b)


def _cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _learnable_batch(shape, batch, classes):
  """Class templates plus noise: learnable, but not from the labels alone."""
  templates = _images(shape, classes, seed=1)
  labels = jnp.asarray(np.arange(batch) % classes)
  return templates[labels] + 0.5 * _images(shape, batch, seed=2), labels


@pytest.mark.parametrize("name, learning_rate", [
    ("lenet5", 0.01),
    pytest.param("alexnet", 1e-3, marks=_slow),
    pytest.param("vgg11_bn", 1e-3, marks=_slow),
    pytest.param("googlenet", 1e-3, marks=_slow),
])
def test_sgd_steps_reduce_the_training_loss(name, learning_rate):
  classes, steps = 4, 8
  model = models.create_model(name, num_classes=classes)
  x, labels = _learnable_batch((32, 32, 3), 8, classes)
  variables = _jit_init(model)(jax.random.key(0), x)
  params = variables.pop("params")

  def loss_fn(params, state, key, x, labels):
    logits, new_state = model.apply(
        {"params": params, **state}, x, train=True, rngs={"dropout": key},
        mutable=_MUTABLE)
    aux = jax.tree_util.tree_leaves(new_state.pop("aux_logits", {}))
    loss = sum(0.3 * _cross_entropy(z, labels) for z in aux)
    return loss + _cross_entropy(logits, labels), new_state

  tx = optax.sgd(learning_rate)

  @jax.jit
  def step(params, opt_state, state, key):
    grads, state = jax.grad(loss_fn, has_aux=True)(
        params, state, key, x, labels)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, state

  # Every copy of an image draws its own dropout mask, so one fixed key
  # still averages dropout's noise out of the before/after comparison.
  tiled = (jnp.tile(x, (4, 1, 1, 1)), jnp.tile(labels, 4))
  measure = jax.jit(lambda p, s: loss_fn(p, s, jax.random.key(99), *tiled)[0])
  before = measure(params, variables)
  opt_state, state = tx.init(params), variables
  for i in range(steps):
    params, opt_state, state = step(params, opt_state, state,
                                    jax.random.key(i))
  after = measure(params, state)
  assert np.isfinite(after) and after < 0.9 * before


# --- summary --------------------------------------------------------------


def test_model_summary_counts_lenet_exactly():
  row = summary.model_summary("lenet5", (32, 32, 3), 7)
  # Multiply-adds of conv 5x5x3->6 at 28x28, conv 5x5x6->16 at 10x10 and the
  # two dense layers; XLA adds biases, ReLUs and pools on top.
  macs = 28 * 28 * 6 * 75 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 7
  outputs = 28 * 28 * 6 + 10 * 10 * 16 + 120 + 7
  assert row["name"] == "lenet5" and row["params"] == 51_839
  assert 2 * macs <= row["flops"] <= 1.05 * 2 * macs
  assert row["activation_bytes"] == 4 * outputs


@_slow
def test_model_summary_does_not_count_googlenet_sows_as_activations():
  row = summary.model_summary("googlenet", (32, 32, 3), 7)
  model = models.create_model("googlenet", num_classes=7)
  variables, x = _abstract_variables(model, (32, 32, 3))
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  sown = 4 * _count(state)
  # The sown stage outputs are a subset of the layers' outputs, so a double
  # count would at least double the total.
  assert sown < row["activation_bytes"] < 2 * sown


def test_format_models_table_aligns_one_row_per_model():
  rows = [{"name": "a", "params": 1234567, "flops": 2_500_000,
           "activation_bytes": 3 * 2**20},
          {"name": "longer_name", "params": 5, "flops": 0,
           "activation_bytes": 0}]
  lines = summary.format_models_table(
      rows + [{"name": "big_tv", "skipped": "needs 63x63"}]).splitlines()
  assert len(lines) == 4
  assert len({len(line) for line in lines[:3]}) == 1
  assert lines[1].split() == ["a", "1,234,567", "2.5", "3.00"]
  assert lines[3] == "big_tv       not shown: needs 63x63"


@pytest.mark.parametrize("argv, message", [
    (["--input-shape", "48x48"], "expected H,W,C"),
    (["--input-shape", "48,48"], "expected H,W,C"),
    (["--input-shape", "48,0,1"], "expected H,W,C"),
    (["--num-classes", "0"], "--num-classes: expected a positive integer"),
])
def test_models_cli_rejects_bad_arguments(argv, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    models_command.main(argv)
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err


@_slow
def test_models_cli_prints_every_registered_model(capsys):
  assert models_command.main(["--input-shape", "32,32,3", "--num-classes", "7"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0] == "input 32x32x3, 7 classes"
  assert [line.split()[0] for line in out[2:-1]] == [
      n for n in models.MODEL_NAMES if n != "alexnet_tv"]  # Needs 63x63.
  # Said in the table, last: why it is not shown.
  assert out[-1].split()[:3] == ["alexnet_tv", "not", "shown:"]
  assert "at least 63x63" in out[-1]
  lenet = summary.model_summary("lenet5", (32, 32, 3), 7)
  assert out[2].split()[1] == f"{lenet['params']:,}"
