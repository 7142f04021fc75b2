"""Trains and evaluates the geometric models (``models.GEOMETRIC_MODELS``).

Their input is a dataset's FaceMesh landmarks (``data.landmarks``, cached
beside the prepared data), turned into descriptors (``landmarks.action_units``
aligned to the training split's mean shape) and classified by an SVM that is
fitted on the whole training split at once: at most ``num_epochs`` L-BFGS
iterations (Optax, backtracking line search, one compiled loop) of the
one-vs-rest squared-hinge objective, scikit-learn LinearSVC's (bias
penalised as liblinear's intercept). Deterministic: the RBF kernel's
Nystrom centres are drawn by the seed, nothing else is random.

The run directory is the CNNs' (config, manifest, metrics.jsonl, one
checkpoint at step ``num_epochs``), so ``ferjax eval``, ``report`` and
``sweep`` read it the same way. Each evaluation also reports
``low_score_meshes``: the faces FaceMesh scored under ``LOW_SCORE`` (their
meshes are unreliable; they are classified and counted, never hidden), and
the accuracy on the others (``accuracy_good_meshes``).
"""

import functools
import logging
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ferjax import config_checks
from ferjax.data import landmarks as landmarks_data
from ferjax.data import loading
from ferjax.landmarks import action_units
from ferjax.models import create_model
from ferjax.models import geometry as geometry_model
from ferjax.run.run_dir import RunDir
from ferjax import metrics as metrics_lib

log = logging.getLogger("ferjax")


def squared_hinge_objective(params: dict[str, jax.Array], h: jax.Array,
                            signs: jax.Array, c: float) -> jax.Array:
  """0.5 |W|^2 + 0.5 |b|^2 + c * sum max(0, 1 - y (h W + b))^2 over every
  example and class, y = +1 for its class and -1 for the others."""
  margins = signs * (h @ params["kernel"] + params["bias"])
  hinge = jnp.maximum(0.0, 1.0 - margins)
  return (0.5 * (jnp.sum(params["kernel"] ** 2) + jnp.sum(params["bias"] ** 2))
          + c * jnp.sum(hinge ** 2))


def fit_svm(h: np.ndarray, labels: np.ndarray, num_classes: int, *,
            c: float = 1.0, iterations: int = 300,
            tolerance: float = 1e-4) -> dict[str, np.ndarray]:
  """One-vs-rest squared-hinge SVM weights of features ``h`` (N, F):
  {'kernel': (F, C), 'bias': (C,)}; L-BFGS until the gradient's norm is
  under ``tolerance`` times its first value or ``iterations`` are done."""
  signs = jnp.where(jax.nn.one_hot(labels, num_classes) > 0, 1.0, -1.0)
  return jax.device_get(_lbfgs(jnp.asarray(h, jnp.float32), signs,
                               jnp.float32(c), jnp.float32(tolerance),
                               iterations=iterations))


@functools.partial(jax.jit, static_argnames=("iterations",))
def _lbfgs(h: jax.Array, signs: jax.Array, c: jax.Array,
           tolerance: jax.Array, *, iterations: int) -> dict[str, jax.Array]:
  # One program for the whole fit (no host round trip per iteration),
  # compiled once per problem shape.
  params = {"kernel": jnp.zeros((h.shape[1], signs.shape[1]), jnp.float32),
            "bias": jnp.zeros((signs.shape[1],), jnp.float32)}
  objective = lambda p: squared_hinge_objective(p, h, signs, c)
  solver = optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(
      max_backtracking_steps=30, store_grad=True))
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry):
    params, state, k, _, first = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(grad, state, params, value=value,
                                   grad=grad, value_fn=objective)
    norm = optax.tree.norm(grad)
    first = jnp.where(k == 0, norm, first)
    return optax.apply_updates(params, updates), state, k + 1, norm, first

  def going(carry):
    _, _, k, norm, first = carry
    return (k < iterations) & ((k == 0) | (norm > tolerance * first))

  inf = jnp.float32(jnp.inf)
  carry = (params, solver.init(params), 0, inf, inf)
  return jax.lax.while_loop(going, step, carry)[0]


def nystrom_params(h: np.ndarray, centres: int, gamma: float,
                   seed: int) -> dict[str, np.ndarray]:
  """``centres`` rows of standardised descriptors ``h`` drawn by ``seed``
  and K_zz^(-1/2) (eigenvalues floored as scikit-learn's Nystroem)."""
  if len(h) < centres:
    raise ValueError(f"config.model.kwargs.centres: {centres} Nystrom "
                     f"centres need as many training faces; the split has "
                     f"{len(h)}")
  rng = np.random.default_rng([seed, 0x9E0])
  z = h[np.sort(rng.choice(len(h), centres, replace=False))]
  k = np.asarray(geometry_model.rbf(jnp.asarray(z), jnp.asarray(z), gamma),
                 np.float64)
  u, s, vt = np.linalg.svd(k)
  projection = (u / np.sqrt(np.maximum(s, 1e-12))) @ vt
  return {"centres": z.astype(np.float32),
          "projection": projection.T.astype(np.float32)}


def svm_inputs(model: geometry_model.GeometrySVM, params: dict[str, Any],
               x: np.ndarray) -> np.ndarray:
  """What the SVM layer of ``model`` sees for descriptors ``x`` (as its
  ``__call__`` computes it, in numpy for fitting)."""
  h = (x - params["mean"]) / params["std"]
  if model.kernel == "rbf":
    gamma = model.gamma or 1.0 / x.shape[1]
    h = np.asarray(geometry_model.rbf(jnp.asarray(h, jnp.float32),
                                      params["centres"], gamma)
                   ) @ params["projection"]
  return h.astype(np.float32)


def fit_model(model: geometry_model.GeometrySVM, x: np.ndarray,
              labels: np.ndarray, *, seed: int, iterations: int,
              reference: np.ndarray) -> dict[str, Any]:
  """The model's variables fitted to descriptors ``x`` (N, D)."""
  params = {"reference": np.asarray(reference, np.float32),
            "mean": x.mean(0).astype(np.float32),
            "std": np.maximum(x.std(0), 1e-6).astype(np.float32)}
  if model.kernel == "rbf":
    params.update(nystrom_params(
        (x - params["mean"]) / params["std"], model.centres,
        model.gamma or 1.0 / x.shape[1], seed))
  params[geometry_model.FITTED] = fit_svm(
      svm_inputs(model, params, x), labels, model.num_classes, c=model.c,
      iterations=iterations)
  return {"params": params}


def split_metrics(model: geometry_model.GeometrySVM, variables: dict,
                  meshes: landmarks_data.Meshes,
                  class_names: tuple[str, ...]) -> dict[str, Any]:
  """Every metric of ``ferjax.metrics`` on ``meshes`` (scores as softmax of
  the SVM's margins), the low-score count and the others' accuracy."""
  probs = np.asarray(jax.nn.softmax(scores(model, variables, meshes.points)))
  result = metrics_lib.from_probabilities(probs, meshes.labels, class_names)
  good = meshes.scores >= landmarks_data.LOW_SCORE
  result["low_score_meshes"] = int((~good).sum())
  result["accuracy_good_meshes"] = float(
      (probs.argmax(-1) == meshes.labels)[good].mean()) if good.any() else 0.0
  return result


def scores(model: geometry_model.GeometrySVM, variables: dict,
           points: np.ndarray) -> np.ndarray:
  """The SVM's class scores (N, C) of meshes (N, 468, 3)."""
  x = action_units.descriptor(points, np.asarray(
      variables["params"]["reference"], np.float64))
  return np.asarray(jax.jit(model.apply)(variables, x))


def _model(config: ml_collections.ConfigDict, num_classes: int
           ) -> geometry_model.GeometrySVM:
  return create_model(config.model.name, num_classes=num_classes,
                      **config.model.kwargs.to_dict())


def _builder(config: ml_collections.ConfigDict, data_dir: str | None = None,
             manual_dir: str | None = None) -> Any:
  inp = config.input
  return loading.prepared_builder(
      inp.dataset, data_dir=data_dir or inp.data_dir,
      manual_dir=manual_dir or inp.manual_dir,
      builder_config=inp.builder_config)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       argv: list[str] | None = None) -> dict[str, Any]:
  """Fits ``config``'s geometric model in ``workdir`` and evaluates it.

  A run that already holds its final checkpoint is evaluated, not refitted.
  """
  config_checks.validate(config)
  run = RunDir(workdir)
  argv = argv if argv is not None else sys.argv
  with run.lock(argv):
    config = run.resumable_config(config)
    builder = _builder(config)
    info = loading.dataset_info(builder)
    class_names = info.class_names
    model = _model(config, len(class_names))
    step = config.num_epochs
    evals = {name: landmarks_data.read_meshes(builder, ev.split)
             for name, ev in config.evals.items()}
    run.write_config(config)
    with run.checkpoints(config, read_only=False) as ckpt:
      if ckpt.latest_step() == step:
        variables = ckpt.restore_variables(step)
        log.info("%s holds its fitted model; evaluating it", workdir)
        return {name: split_metrics(model, variables, m, class_names)
                for name, m in evals.items()}
      train = landmarks_data.read_meshes(builder, config.input.train_split)
      low = {config.input.train_split: train.low_score,
             **{config.evals[n].split: m.low_score for n, m in evals.items()}}
      log.info("faces FaceMesh scored under %.1f: %s", landmarks_data.LOW_SCORE,
               ", ".join(f"{s} {n}" for s, n in low.items()))
      manifest = run.start_session(
          argv=argv, start_step=0, seed=config.seed,
          dataset={**info.__dict__, "pipeline": "landmarks",
                   "split_sizes_used": {"train": len(train),
                                        **{n: len(m) for n, m in
                                           evals.items()}},
                   "low_score_meshes": low})
      writer = run.metric_writer()
      try:
        began = time.monotonic()
        reference = action_units.mean_shape(train.points)
        x = action_units.descriptor(train.points, reference)
        variables = fit_model(model, x, train.labels, seed=config.seed,
                              iterations=config.num_epochs,
                              reference=reference)
        seconds = time.monotonic() - began
        log.info("fitted %s (%s kernel) on %d faces in %.1f s",
                 config.model.name, model.kernel, len(train), seconds)
        train_result = split_metrics(model, variables, train, class_names)
        writer.write(step, "train", {
            "loss": train_result["loss"], "accuracy": train_result["accuracy"],
            "fit_seconds": seconds, "low_score_meshes": train.low_score})
        results = {name: split_metrics(model, variables, m, class_names)
                   for name, m in evals.items()}
        for name, result in results.items():
          writer.write(step, name, result)
        scalars = {f"{name}/{k}": float(v) for name, r in results.items()
                   for k, v in r.items() if isinstance(v, (int, float))}
        ckpt.save(step, variables, scalars)
        ckpt.wait()
        writer.hparams(config.to_dict(), scalars, step)
      except BaseException as e:
        writer.close()
        run.finish_session(manifest, end_step=0,
                           error=f"{type(e).__name__}: {e}")
        raise
      writer.close()
      run.finish_session(manifest, end_step=step)
  return results


def evaluate_run(workdir: str, *, split: str | None = None,
                 checkpoint: str = "best", data_dir: str | None = None,
                 manual_dir: str | None = None) -> dict[str, Any]:
  """``run_evaluation.evaluate_run``'s record for a geometric run."""
  run = RunDir(workdir)
  config = run.read_config()
  builder = _builder(config, data_dir, manual_dir)
  class_names = tuple(run.dataset()["class_names"])
  model = _model(config, len(class_names))
  with run.checkpoints(config) as ckpt:
    step = run.resolve_step(ckpt, checkpoint)
    variables = ckpt.restore_variables(step)
  evals = ({split: split} if split is not None else
           {name: ev.split for name, ev in config.evals.items()})
  results = {name: split_metrics(model, variables,
                                 landmarks_data.read_meshes(builder, s),
                                 class_names)
             for name, s in evals.items()}
  return {"workdir": str(workdir), "step": step, "checkpoint": checkpoint,
          "selected_by": config.checkpoint.best_metric or None,
          "results": results}


def split_scores(workdir: str, *, split: str, checkpoint: str = "best",
                 data_dir: str | None = None,
                 manual_dir: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """The SVM scores (N, C) and labels of ``split``: what late fusion fits."""
  run = RunDir(workdir)
  config = run.read_config()
  builder = _builder(config, data_dir, manual_dir)
  model = _model(config, len(run.dataset()["class_names"]))
  with run.checkpoints(config) as ckpt:
    variables = ckpt.restore_variables(run.resolve_step(ckpt, checkpoint))
  meshes = landmarks_data.read_meshes(builder, split)
  return scores(model, variables, meshes.points), meshes.labels
