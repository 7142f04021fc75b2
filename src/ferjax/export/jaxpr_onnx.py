"""A JAX function as an ONNX graph, primitive by primitive, batch left open.

ferjax lowers its own jaxprs instead of using jax2onnx: jax2onnx 0.17.1
requires orbax-checkpoint<0.11.37 (ferjax is locked at 0.12.8) and brings
huggingface-hub, equinox, netron and orbax-export along. The models need few
primitives (convolutions, matrix products, elementwise arithmetic, slices,
pads, concatenations, reductions), each one or two ONNX operators here.

The batch size stays a graph input's dimension: the function is traced at
two batch sizes, and every size that differs between the two traces is a
multiple of the batch (``Dim``), computed in the graph from the input's
shape. Tracing with a symbolic batch (``jax.export``) would be the natural
way, but ``jnp`` turns strided slices of symbolic shapes into gathers.

A primitive or parameter without a lowering raises ``NotLowerable`` naming
it; the opset is ``OPSET``.
"""

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

OPSET = 18
# The two batch sizes the function is traced at.
_BATCHES = (2, 3)
_INT64_MAX = np.iinfo(np.int64).max


class NotLowerable(ValueError):
  """The function uses something that has no ONNX lowering here."""


@dataclasses.dataclass(frozen=True)
class Dim:
  """A size that grows with the batch: ``scale * batch + offset``."""

  scale: int
  offset: int = 0


def _symbolic(a: Any, b: Any, what: str) -> Any:
  """The value of a parameter or shape from the two traces, with ``Dim``s
  where the two differ."""
  if _same(a, b):
    return a
  if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(
      a) == len(b):
    return tuple(_symbolic(x, y, what) for x, y in zip(a, b))
  if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) \
      and not isinstance(a, bool):
    (n1, n2), scale = _BATCHES, (int(b) - int(a)) // (_BATCHES[1] - _BATCHES[0])
    if scale * (n2 - n1) != int(b) - int(a):
      raise NotLowerable(f"{what}: {a} and {b} at batch sizes {n1} and {n2} "
                         "are not a multiple of the batch size")
    return Dim(scale, int(a) - scale * n1)
  raise NotLowerable(f"{what}: differs between batch sizes ({a!r} and "
                     f"{b!r}); only shapes may depend on the batch size")


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, (np.ndarray, np.generic)) or isinstance(
      b, (np.ndarray, np.generic)):
    return np.array_equal(np.asarray(a), np.asarray(b))
  try:
    return bool(a == b)
  except (ValueError, TypeError):
    return False


@dataclasses.dataclass
class _Value:
  name: str
  shape: tuple[int | Dim, ...]
  dtype: np.dtype


class _Graph:
  """Nodes and initializers of the graph being built, and the batch size."""

  def __init__(self, input_name: str):
    self.nodes: list[Any] = []
    self.initializers: list[Any] = []
    self._counter = itertools.count()
    self._input_name = input_name
    self._batch: str | None = None

  def fresh(self, hint: str) -> str:
    return f"{hint}_{next(self._counter)}"

  def node(self, op: str, inputs: Sequence[str], **attrs: Any) -> str:
    from onnx import helper
    out = self.fresh(op.lower())
    self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
    return out

  def const(self, value: Any, dtype: Any = None) -> str:
    from onnx import numpy_helper
    array = np.asarray(value, dtype=dtype)
    name = self.fresh("const")
    self.initializers.append(numpy_helper.from_array(array, name))
    return name

  def batch(self) -> str:
    """A 1-D int64 tensor holding the batch size (the input's first dim)."""
    if self._batch is None:
      self._batch = self.node("Shape", [self._input_name], start=0, end=1)
    return self._batch

  def shape(self, dims: Sequence[int | Dim], *, infer_one: bool = False
            ) -> str:
    """An int64 shape tensor; ``infer_one``: a lone ``Dim`` may be -1."""
    dims = tuple(dims)
    symbolic = [d for d in dims if isinstance(d, Dim)]
    if not symbolic:
      return self.const(dims, np.int64)
    if infer_one and len(symbolic) == 1:
      return self.const([-1 if isinstance(d, Dim) else d for d in dims],
                        np.int64)
    parts = []
    for d in dims:
      if isinstance(d, Dim):
        part = self.node("Mul", [self.batch(), self.const([d.scale],
                                                          np.int64)])
        if d.offset:
          part = self.node("Add", [part, self.const([d.offset], np.int64)])
        parts.append(part)
      else:
        parts.append(self.const([d], np.int64))
    return self.node("Concat", parts, axis=0)


@dataclasses.dataclass
class _Eqn:
  """One primitive application, its parameters made symbolic."""

  graph: _Graph
  name: str
  params: dict[str, Any]
  inputs: list[_Value]
  out_shapes: list[tuple[int | Dim, ...]]
  out_dtypes: list[np.dtype]

  def fail(self, why: str) -> NotLowerable:
    return NotLowerable(f"primitive {self.name!r}: {why}")


def _onnx_type(dtype: Any) -> int:
  from onnx import helper
  return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div",
           "max": "Max", "min": "Min", "pow": "Pow", "eq": "Equal",
           "ge": "GreaterOrEqual", "gt": "Greater", "le": "LessOrEqual",
           "lt": "Less", "and": "And", "or": "Or", "xor": "Xor"}
_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
          "tanh": "Tanh", "logistic": "Sigmoid", "abs": "Abs",
          "sign": "Sign", "floor": "Floor", "ceil": "Ceil", "erf": "Erf",
          "not": "Not", "stop_gradient": "Identity", "copy": "Identity",
          "copy_p": "Identity", "sin": "Sin", "cos": "Cos"}
_REDUCE = {"reduce_sum": "ReduceSum", "reduce_max": "ReduceMax",
           "reduce_min": "ReduceMin", "reduce_prod": "ReduceProd"}
# Primitives that call a jaxpr, and the parameter that holds it.
_CALLS = {"jit": "jaxpr", "pjit": "jaxpr", "custom_jvp_call": "call_jaxpr",
          "custom_vjp_call": "call_jaxpr", "closed_call": "call_jaxpr",
          "remat": "jaxpr", "checkpoint": "jaxpr"}


def _lower_binary(e: _Eqn) -> str:
  x, y = (v.name for v in e.inputs)
  integer = not np.issubdtype(e.inputs[0].dtype, np.floating)
  if e.name in ("and", "or", "xor") and e.inputs[0].dtype != np.bool_:
    raise e.fail("bitwise operations on integers are not lowered")
  if e.name == "div" and integer:
    raise e.fail("integer division is not lowered (rounding differs)")
  return e.graph.node(_BINARY[e.name], [x, y])


def _lower_unary(e: _Eqn) -> str:
  (x,) = (v.name for v in e.inputs)
  if e.name == "not" and e.inputs[0].dtype != np.bool_:
    raise e.fail("bitwise not on integers is not lowered")
  return e.graph.node(_UNARY[e.name], [x])


def _lower_misc(e: _Eqn) -> str | None:
  """Elementwise primitives that take a few operators; None: not one."""
  g, names = e.graph, [v.name for v in e.inputs]
  if e.name == "ne":
    return g.node("Not", [g.node("Equal", names)])
  if e.name == "rsqrt":
    return g.node("Reciprocal", [g.node("Sqrt", names)])
  if e.name == "square":
    return g.node("Mul", [names[0], names[0]])
  if e.name == "integer_pow":
    return g.node("Pow", [names[0], g.const(e.params["y"],
                                            e.inputs[0].dtype)])
  if e.name == "exp2":
    return g.node("Pow", [g.const(2, e.inputs[0].dtype), names[0]])
  if e.name == "log1p":
    return g.node("Log", [g.node("Add", [names[0],
                                         g.const(1, e.inputs[0].dtype)])])
  if e.name == "clamp":
    low, x, high = names
    return g.node("Max", [g.node("Min", [x, high]), low])
  if e.name == "convert_element_type":
    return g.node("Cast", names, to=_onnx_type(e.params["new_dtype"]))
  if e.name == "select_n":
    if len(names) != 3:
      raise e.fail(f"{len(names) - 1} cases; only two are lowered")
    pred = names[0]
    if e.inputs[0].dtype != np.bool_:
      pred = g.node("Cast", [pred], to=_onnx_type(np.bool_))
    return g.node("Where", [pred, names[2], names[1]])
  return None


def _lower_reshape(e: _Eqn) -> str:
  if e.params.get("dimensions") is not None:
    raise e.fail("reshape with dimensions (a transposition) is not lowered")
  return e.graph.node("Reshape", [e.inputs[0].name, e.graph.shape(
      e.params["new_sizes"], infer_one=True)])


def _lower_broadcast_in_dim(e: _Eqn) -> str:
  g, (x,) = e.graph, e.inputs
  shape, dims = e.params["shape"], e.params["broadcast_dimensions"]
  if len(e.inputs) != 1:
    raise e.fail("dynamic shapes are not lowered")
  kept = [1] * len(shape)
  for axis, size in zip(dims, x.shape):
    kept[axis] = size
  name = x.name
  if tuple(kept) != tuple(x.shape):
    name = g.node("Reshape", [name, g.shape(kept, infer_one=True)])
  if tuple(kept) == tuple(shape):
    return name
  target = [1 if k == s else s for k, s in zip(kept, shape)]
  return g.node("Expand", [name, g.shape(target)])


def _lower_transpose(e: _Eqn) -> str:
  return e.graph.node("Transpose", [e.inputs[0].name],
                      perm=list(e.params["permutation"]))


def _lower_squeeze(e: _Eqn) -> str:
  return e.graph.node("Squeeze", [e.inputs[0].name, e.graph.const(
      e.params["dimensions"], np.int64)])


def _lower_reduce(e: _Eqn) -> str:
  return e.graph.node(_REDUCE[e.name], [e.inputs[0].name, e.graph.const(
      e.params["axes"], np.int64)], keepdims=0)


def _lower_argmax(e: _Eqn) -> str:
  (axis,) = e.params["axes"]
  op = "ArgMax" if e.name == "argmax" else "ArgMin"
  index = e.graph.node(op, [e.inputs[0].name], axis=axis, keepdims=0)
  return e.graph.node("Cast", [index], to=_onnx_type(e.params["index_dtype"]))


def _lower_concatenate(e: _Eqn) -> str:
  return e.graph.node("Concat", [v.name for v in e.inputs],
                      axis=e.params["dimension"])


def _lower_stack(e: _Eqn) -> str:
  g, axis = e.graph, e.params["axis"]
  parts = [g.node("Unsqueeze", [v.name, g.const([axis], np.int64)])
           for v in e.inputs]
  return g.node("Concat", parts, axis=axis)


def _lower_tile(e: _Eqn) -> str:
  return e.graph.node("Tile", [e.inputs[0].name, e.graph.const(
      e.params["reps"], np.int64)])


def _lower_slice(e: _Eqn) -> str:
  g, (x,) = e.graph, e.inputs
  starts, limits = e.params["start_indices"], e.params["limit_indices"]
  strides = e.params["strides"] or (1,) * len(starts)
  axes, begin, end, steps = [], [], [], []
  for axis, (size, start, limit, stride) in enumerate(
      zip(x.shape, starts, limits, strides)):
    if start == 0 and limit == size and stride == 1:
      continue
    if isinstance(start, Dim) or isinstance(limit, Dim):
      if start != 0 or limit != size:
        raise e.fail("a slice of the batch dimension is not lowered")
      limit = _INT64_MAX
    axes.append(axis)
    begin.append(start)
    end.append(limit)
    steps.append(stride)
  if not axes:
    return g.node("Identity", [x.name])
  return g.node("Slice", [x.name, g.const(begin, np.int64),
                          g.const(end, np.int64), g.const(axes, np.int64),
                          g.const(steps, np.int64)])


def _lower_pad(e: _Eqn) -> str:
  g, (x, value) = e.graph, e.inputs
  config = e.params["padding_config"]
  if any(interior for _, _, interior in config):
    raise e.fail("interior padding is not lowered")
  lows = [max(lo, 0) for lo, _, _ in config]
  highs = [max(hi, 0) for _, hi, _ in config]
  name = x.name
  if any(lows) or any(highs):
    name = g.node("Pad", [name, g.const(lows + highs, np.int64), value.name],
                  mode="constant")
  cuts = [(axis, -min(lo, 0), min(hi, 0))
          for axis, (lo, hi, _) in enumerate(config) if lo < 0 or hi < 0]
  if cuts:
    name = g.node("Slice", [
        name, g.const([c[1] for c in cuts], np.int64),
        g.const([c[2] if c[2] else _INT64_MAX for c in cuts], np.int64),
        g.const([c[0] for c in cuts], np.int64)])
  return name


def _lower_iota(e: _Eqn) -> str:
  shape, dimension = e.params["shape"], e.params["dimension"]
  if any(isinstance(d, Dim) for d in shape):
    raise e.fail("an iota as long as the batch is not lowered")
  values = np.arange(shape[dimension], dtype=e.params["dtype"])
  values = values.reshape([-1 if i == dimension else 1
                           for i in range(len(shape))])
  return e.graph.const(np.broadcast_to(values, shape))


def _lower_dot_general(e: _Eqn) -> str:
  g, (lhs, rhs) = e.graph, e.inputs
  (lc, rc), (lb, rb) = e.params["dimension_numbers"]
  if not lb and tuple(lc) == (len(lhs.shape) - 1,) and tuple(rc) == (0,) \
      and len(rhs.shape) == 2:
    out = g.node("MatMul", [lhs.name, rhs.name])
  else:
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    lhs_ix, rhs_ix = [None] * len(lhs.shape), [None] * len(rhs.shape)
    for i, j in zip(lb, rb):
      lhs_ix[i] = rhs_ix[j] = next(letters)
    for i, j in zip(lc, rc):
      lhs_ix[i] = rhs_ix[j] = next(letters)
    lhs_free = [i for i in range(len(lhs_ix)) if lhs_ix[i] is None]
    rhs_free = [j for j in range(len(rhs_ix)) if rhs_ix[j] is None]
    for i in lhs_free:
      lhs_ix[i] = next(letters)
    for j in rhs_free:
      rhs_ix[j] = next(letters)
    out_ix = ([lhs_ix[i] for i in lb] + [lhs_ix[i] for i in lhs_free]
              + [rhs_ix[j] for j in rhs_free])
    equation = f"{''.join(lhs_ix)},{''.join(rhs_ix)}->{''.join(out_ix)}"
    out = g.node("Einsum", [lhs.name, rhs.name], equation=equation)
  if np.dtype(e.out_dtypes[0]) != np.dtype(lhs.dtype):
    out = g.node("Cast", [out], to=_onnx_type(e.out_dtypes[0]))
  return out


def _lower_conv(e: _Eqn) -> str:
  g, (x, w) = e.graph, e.inputs
  p = e.params
  if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
    raise e.fail("transposed or batch-grouped convolutions are not lowered")
  if any(lo < 0 or hi < 0 for lo, hi in p["padding"]):
    raise e.fail("negative convolution padding is not lowered")
  numbers = p["dimension_numbers"]
  lhs_spec, rhs_spec, out_spec = (tuple(numbers.lhs_spec),
                                  tuple(numbers.rhs_spec),
                                  tuple(numbers.out_spec))
  ident = tuple(range(len(lhs_spec)))
  xt = x.name if lhs_spec == ident else g.node("Transpose", [x.name],
                                               perm=list(lhs_spec))
  wt = w.name if rhs_spec == ident else g.node("Transpose", [w.name],
                                               perm=list(rhs_spec))
  pads = [lo for lo, _ in p["padding"]] + [hi for _, hi in p["padding"]]
  y = g.node("Conv", [xt, wt], strides=list(p["window_strides"]), pads=pads,
             dilations=list(p["rhs_dilation"]),
             group=p["feature_group_count"])
  if out_spec != ident:
    y = g.node("Transpose", [y], perm=[int(i) for i in np.argsort(out_spec)])
  if np.dtype(e.out_dtypes[0]) != np.dtype(x.dtype):
    y = g.node("Cast", [y], to=_onnx_type(e.out_dtypes[0]))
  return y


def _lower_reduce_window_max(e: _Eqn) -> str:
  """Max pooling over the spatial axes of an NHWC array: MaxPool."""
  g, (x,) = e.graph, e.inputs
  p = e.params
  window, strides = p["window_dimensions"], p["window_strides"]
  rank = len(window)
  if (rank < 3 or window[0] != 1 or window[-1] != 1 or strides[0] != 1
      or strides[-1] != 1 or any(lo or hi for lo, hi in (p["padding"][0],
                                                          p["padding"][-1]))
      or any(d != 1 for d in (*p["base_dilation"], *p["window_dilation"]))):
    raise e.fail("only max pooling over the middle (spatial) axes of a "
                 "channels-last array is lowered")
  to_nchw = [0, rank - 1, *range(1, rank - 1)]
  pads = p["padding"][1:-1]
  y = g.node("MaxPool", [g.node("Transpose", [x.name], perm=to_nchw)],
             kernel_shape=list(window[1:-1]), strides=list(strides[1:-1]),
             pads=[lo for lo, _ in pads] + [hi for _, hi in pads])
  return g.node("Transpose", [y], perm=[int(i) for i in np.argsort(to_nchw)])


_LOWERINGS: dict[str, Callable[[_Eqn], str]] = {
    **{name: _lower_binary for name in _BINARY},
    **{name: _lower_unary for name in _UNARY},
    **{name: _lower_reduce for name in _REDUCE},
    "argmax": _lower_argmax, "argmin": _lower_argmax,
    "reshape": _lower_reshape, "broadcast_in_dim": _lower_broadcast_in_dim,
    "transpose": _lower_transpose, "squeeze": _lower_squeeze,
    "concatenate": _lower_concatenate, "stack": _lower_stack,
    "slice": _lower_slice, "tile": _lower_tile, "pad": _lower_pad, "iota": _lower_iota,
    "dot_general": _lower_dot_general, "conv_general_dilated": _lower_conv,
    "reduce_window_max": _lower_reduce_window_max,
}


def _value_of(g: _Graph, env: dict[Any, _Value], a: Any, b: Any) -> _Value:
  """The graph value of one jaxpr operand (a variable or a literal)."""
  from jax.extend.core import Literal
  if isinstance(a, Literal):
    value = _symbolic(a.val, b.val, "a literal")
    array = np.asarray(value, dtype=a.aval.dtype)
    return _Value(g.const(array), array.shape, array.dtype)
  return env[a]


def _lower_jaxpr(g: _Graph, ja: Any, jb: Any, consts: Sequence[Any],
                 inputs: Sequence[_Value]) -> list[_Value]:
  """Lowers jaxpr ``ja`` (``jb``: the same at the other batch size)."""
  env: dict[Any, _Value] = {}
  for var, value in zip(ja.constvars, consts):
    array = np.asarray(value)
    env[var] = _Value(g.const(array), array.shape, array.dtype)
  for var, value in zip(ja.invars, inputs):
    env[var] = value
  if len(ja.eqns) != len(jb.eqns):
    raise NotLowerable("the function's program depends on the batch size")
  for ea, eb in zip(ja.eqns, jb.eqns):
    name = ea.primitive.name
    if name != eb.primitive.name:
      raise NotLowerable("the function's program depends on the batch size "
                         f"({name} and {eb.primitive.name})")
    ins = [_value_of(g, env, a, b) for a, b in zip(ea.invars, eb.invars)]
    if name in _CALLS:
      inner_a, inner_b = ea.params[_CALLS[name]], eb.params[_CALLS[name]]
      if hasattr(inner_a, "jaxpr"):  # A ClosedJaxpr.
        outs = _lower_jaxpr(g, inner_a.jaxpr, inner_b.jaxpr, inner_a.consts,
                            ins)
      else:
        outs = _lower_jaxpr(g, inner_a, inner_b, (), ins)
    else:
      params = {k: _symbolic(v, eb.params.get(k), f"{name}.{k}")
                for k, v in ea.params.items()
                if k not in ("sharding", "out_sharding", "precision",
                             "accumulation_type")}
      shapes = [_symbolic(va.aval.shape, vb.aval.shape, f"{name} output")
                for va, vb in zip(ea.outvars, eb.outvars)]
      dtypes = [np.dtype(v.aval.dtype) for v in ea.outvars]
      e = _Eqn(g, name, params, ins, shapes, dtypes)
      if len(ea.outvars) != 1:
        raise e.fail("primitives with several outputs are not lowered")
      out = _lower_misc(e)
      if out is None:
        if name not in _LOWERINGS:
          raise NotLowerable(f"primitive {name!r} has no ONNX lowering in "
                             "ferjax.export.jaxpr_onnx")
        out = _LOWERINGS[name](e)
      outs = [_Value(out, shapes[0], dtypes[0])]
    for var, value in zip(ea.outvars, outs):
      env[var] = value
  return [_value_of(g, env, a, b) for a, b in zip(ja.outvars, jb.outvars)]


def to_onnx(fn: Callable[..., Any], *input_shapes: Sequence[int],
            input_dtypes: Sequence[Any] | None = None,
            input_names: Sequence[str] = ("input",),
            output_names: Sequence[str] = ("output",),
            metadata: Mapping[str, str] | None = None,
            graph_name: str = "ferjax") -> Any:
  """``fn`` (batched arrays in, an array or a tuple of arrays out) as an
  ``onnx.ModelProto``. Input i is ``(batch, *input_shapes[i])``, the batch
  any size and shared by the inputs. Raises ``NotLowerable`` naming what
  does not lower."""
  import onnx
  from onnx import helper
  dtypes = [np.dtype(d) for d in (input_dtypes or [np.float32]
                                  * len(input_shapes))]
  if not len(input_shapes) == len(dtypes) == len(input_names):
    raise ValueError(f"{len(input_shapes)} input shapes, {len(dtypes)} "
                     f"dtypes and {len(input_names)} names given")
  traces = [jax.make_jaxpr(fn)(*(
      jax.ShapeDtypeStruct((n, *shape), dtype)
      for shape, dtype in zip(input_shapes, dtypes))) for n in _BATCHES]
  ja, jb = (t.jaxpr for t in traces)
  if len(ja.outvars) != len(output_names):
    raise ValueError(f"the function has {len(ja.outvars)} outputs, "
                     f"{len(output_names)} output names given")
  g = _Graph(input_names[0])
  sources = [_Value(name, (Dim(1), *shape), dtype) for name, shape, dtype
             in zip(input_names, input_shapes, dtypes)]
  outs = _lower_jaxpr(g, ja, jb, traces[0].consts, sources)
  outputs = []
  for name, value in zip(output_names, outs):
    g.nodes.append(helper.make_node("Identity", [value.name], [name]))
    dims = ["batch" if d == Dim(1) else (None if isinstance(d, Dim) else d)
            for d in value.shape]
    outputs.append(helper.make_tensor_value_info(name, _onnx_type(
        value.dtype), dims))
  graph = helper.make_graph(
      g.nodes, graph_name,
      [helper.make_tensor_value_info(v.name, _onnx_type(v.dtype),
                                     ["batch", *v.shape[1:]])
       for v in sources],
      outputs, initializer=g.initializers)
  model = helper.make_model(graph, producer_name="ferjax",
                            opset_imports=[helper.make_opsetid("", OPSET)])
  helper.set_model_props(model, dict(metadata or {}))
  onnx.checker.check_model(model)
  return model
