"""The imperative shell: data on devices, the step loop, evals, checkpoints.

Everything numeric happens in the pure functions of ``steps`` and
``losses``; ``setup`` builds them from the config, ``run_dir`` owns what the
run leaves on disk; this module decides when to call them and where the
results go.
"""

import contextlib
import logging
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ferjax import config_checks
from ferjax.models import GEOMETRIC_MODELS
from ferjax.run.run_dir import RunDir
from ferjax.train import geometry
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import divergence
from ferjax.train import init_from as init_from_lib
from ferjax.train import optimizer as optimizer_lib
from ferjax.train import setup as setup_lib
from ferjax.train.parallel import Parallel, cpu_devices_in_force
from ferjax.train.progress import Progress

log = logging.getLogger("ferjax")

# Saved with each checkpoint: the train metrics of the logging window so
# far, so that a resumed run logs the same window averages as an
# uninterrupted one.
_WINDOW = "train_window"


def variables(state: Any, weights: str = "raw") -> dict[str, Any]:
  """The model variables of a train state: what evaluation needs.

  ``weights`` picks the trained variables (``raw``) or their moving average
  (``ema``, see ``evals.NAME.weights``).
  """
  if weights == "ema":
    return state.ema
  return {"params": state.params, "batch_stats": state.batch_stats}


def _plateau_value(config: ml_collections.ConfigDict,
                   results: dict[str, dict[str, Any]]) -> float | None:
  if config.optimizer.schedule != "plateau":
    return None
  name, metric = config.optimizer.plateau.metric.split("/")
  return float(results[name][metric])


def _due_evaluations(config: ml_collections.ConfigDict, epochs_done: int, *,
                     last: bool) -> list[str]:
  """The evals to run after ``epochs_done`` epochs: all of them at the end."""
  due = []
  for name, ev in config.evals.items():
    every = ev.get("every_epochs") or config.eval_every_epochs
    if last or epochs_done % every == 0:
      due.append(name)
  return due


def _scalar_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
  return {f"{name}/{k}": float(v) for name, r in results.items()
          for k, v in r.items() if isinstance(v, (int, float))}


def _restore_newest_intact(run: RunDir, ckpt: checkpoint_lib.Checkpoints,
                           template: Any) -> tuple[int, Any]:
  """The newest checkpoint that verifies; damaged ones are set aside.

  Returns (0, template) when none is left.
  """
  for step in sorted(ckpt.all_steps(), reverse=True):
    try:
      state = ckpt.restore(step, template)
      # An unverified step's damage may show only as non-finite values.
      checkpoint_lib.check_finite(
          ckpt.directory / str(step),
          {"params": state.params, "batch_stats": state.batch_stats,
           "opt_state": state.opt_state})
      return step, state
    except checkpoint_lib.CorruptCheckpoint as e:
      moved = ckpt.set_aside(step, run.corrupt_checkpoints_path)
      log.warning("%s; moved to %s, resuming from an earlier checkpoint",
                  e, moved)
  return 0, template


def _window(ckpt: checkpoint_lib.Checkpoints, step: int) -> list[dict]:
  """The train metrics saved with ``step`` since its last train event."""
  saved = ckpt.metrics(step).get(_WINDOW) or {}
  n = len(next(iter(saved.values()), []))
  return [{k: np.float32(v[i]) for k, v in saved.items()} for i in range(n)]


@jax.jit
def _stack(metrics: list[dict[str, jax.Array]]) -> dict[str, jax.Array]:
  """The metrics of several calls as one array per name, step by step."""
  return {k: jnp.concatenate([jnp.atleast_1d(m[k]) for m in metrics])
          for k in metrics[0]}


def _fetch(parallel: Parallel,
           pending: list[dict[str, jax.Array]]) -> list[dict[str, Any]]:
  """Per-step metrics on the host: one program and one transfer for all."""
  host = jax.device_get(_stack(parallel.first_copy(pending)))
  n = len(next(iter(host.values())))
  return [{k: v[i] for k, v in host.items()} for i in range(n)]


def _log_header(training: setup_lib.Training, run: RunDir, state: Any,
                start_step: int) -> None:
  """What a batch job's log says before the first step: the run, the
  model, the devices and the data."""
  config, data = training.config, training.data
  params = sum(int(np.size(x)) for x in jax.tree.leaves(state.params))
  devices = training.parallel.devices
  kinds = sorted({d.platform for d in devices})
  log.info("workdir %s (%s)", run.path,
           f"resuming from step {start_step}" if start_step else "new run")
  log.info("model %s: %s parameters, %s", config.model.name,
           f"{params:,}", config.model.dtype)
  log.info("devices: %d x %s (%s), %d process(es); batch %d", len(devices),
           "/".join(kinds), training.parallel.backend, jax.process_count(),
           config.batch_size)
  log.info("data %s: train %s images (%s, %s)%s", config.input.dataset,
           f"{data.num_train:,}", config.input.train_split,
           "streamed" if data.streaming else "in memory",
           "".join(f", {name} {len(split):,}"
                   for name, split in data.eval_splits.items()))
  log.info("%d steps: %d epochs of %d, evaluation every %d epoch(s)",
           training.total_steps, config.num_epochs, training.steps_per_epoch,
           config.eval_every_epochs)


def _eval_line(step: int, results: dict[str, dict[str, Any]]) -> str:
  """One log line per evaluation: loss, accuracy and macro F1 by split."""
  shown = ("loss", "accuracy", "macro_f1")
  return f"step {step}: " + "; ".join(
      f"{name} " + ", ".join(f"{m} {r[m]:.4f}" for m in shown if m in r)
      for name, r in results.items())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       *, argv: list[str] | None = None) -> dict[str, Any]:
  """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint).

  Returns the final evaluation results by eval name. The chief process
  holds the run directory's lock throughout: a second writer is refused.
  The geometric models (landmarks, not images) are fitted by ``geometry``.
  """
  if config.model.name in GEOMETRIC_MODELS:
    return geometry.train_and_evaluate(config, workdir, argv=argv)
  config_checks.validate(config)
  run = RunDir(workdir)
  argv = argv if argv is not None else sys.argv
  is_chief = jax.process_index() == 0
  with run.lock(argv) if is_chief else contextlib.nullcontext():
    legacy = run.legacy_fields()
    config = cpu_devices_in_force(run.resumable_config(config))
    parallel = Parallel.from_config(config.parallel)
    training = setup_lib.training(config, parallel)
    if is_chief:
      run.write_config(training.config)
    with run.checkpoints(training.config, read_only=False) as ckpt:
      return _train(training, run, ckpt, argv=argv, legacy=legacy,
                    is_chief=is_chief)


def _train(training: setup_lib.Training, run: RunDir,
           ckpt: checkpoint_lib.Checkpoints, *, argv: list[str],
           legacy: dict[str, Any], is_chief: bool) -> dict[str, Any]:
  config, parallel = training.config, training.parallel
  host_state = training.init_state()
  start_step, host_state = _restore_newest_intact(run, ckpt, host_state)
  init_record = None
  pending = []
  if start_step:
    # A resumed run continues its own state, never the source's again.
    log.info("resumed from step %d", start_step)
    pending = _window(ckpt, start_step)
  elif config.init_from.workdir:
    host_state, init_record = init_from_lib.load(
        host_state, init_from=config.init_from,
        class_names=training.class_names, tx=training.tx)
    if config.optimizer.ema_decay:
      # The moving average starts where training does.
      host_state = host_state.replace(ema=variables(host_state))
    log.info("initialised from %s step %d: %d variables loaded, %d skipped",
             init_record["workdir"], init_record["step"],
             init_record["loaded"], len(init_record["skipped"]))
  if is_chief:
    _log_header(training, run, host_state, start_step)
  state = parallel.replicate(host_state)

  writer = run.metric_writer(enabled=is_chief)
  writer.truncate_after(start_step)
  data = training.data
  manifest = run.start_session(
      argv=argv, start_step=start_step, seed=config.seed,
      dataset={**data.info.__dict__,
               "pipeline": "stream" if data.streaming else "memory",
               "split_sizes_used": {
                   "train": data.num_train,
                   **{n: len(s) for n, s in data.eval_splits.items()}},
               **({"mixture": list(data.mixture)} if data.mixture else {}),
               **data.low_score_meshes()},
      init_from=init_record, legacy=legacy) if is_chief else None
  step = start_step
  try:
    results = _steps(training, ckpt, writer, state, start_step, pending,
                     is_chief)
    step = training.total_steps
    writer.hparams(config.to_dict(), _scalar_metrics(results), step)
  except BaseException as e:
    writer.close()
    if is_chief:
      run.finish_session(manifest, end_step=ckpt.latest_step() or 0,
                         error=f"{type(e).__name__}: {e}")
    raise
  writer.close()
  if is_chief:
    run.finish_session(manifest, end_step=step)
  return results


def _steps(training: setup_lib.Training, ckpt: checkpoint_lib.Checkpoints,
           writer: Any, state: Any, start_step: int, pending: list[dict],
           is_chief: bool) -> dict[str, Any]:
  """The step loop from ``start_step``; returns the final evaluation."""
  config, parallel = training.config, training.parallel
  spe = training.steps_per_epoch
  progress = Progress(training.total_steps, start_step, config.batch_size,
                      enabled=is_chief)
  results: dict[str, dict[str, Any]] = {}
  window: list[dict[str, Any]] = list(pending)  # On the host.
  pending_device: list[dict[str, jax.Array]] = []
  step = start_step
  t_log = time.monotonic()
  step_log = step
  # Each call runs n steps (input_pipeline.call_plan); every boundary below
  # (and so every saved step a run resumes from) falls between calls.
  for n, data, order in training.batches().iterate(start_step,
                                                   training.total_steps):
    epoch = step // spe
    if step == start_step:
      log.info("compiling the train step (first step only)")
      compile_start = time.monotonic()
    state, metrics = training.train_step(state, data, order, n)
    ckpt.record_committed()  # The last save's checksums, once written.
    if step == start_step:
      log.info("train step compiled and dispatched in %.1f s",
               time.monotonic() - compile_start)
    pending_device.append(metrics)
    step += n
    epoch_end = step % spe == 0
    every = config.checkpoint.every_steps
    save_now = (epoch_end and ((epoch + 1) % config.checkpoint.every_epochs == 0
                               or step == training.total_steps)
                or bool(every and step % every == 0))
    logged = None
    if step % config.log_every_steps == 0 or step == training.total_steps:
      window += _fetch(parallel, pending_device)
      elapsed = time.monotonic() - t_log
      summary = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
      summary["images_per_second"] = (
          (step - step_log) * config.batch_size / elapsed if elapsed else 0.0)
      divergence.check_train_metrics(step, summary, ckpt)
      writer.write(step, "train", summary)
      logged = summary
      pending_device, window = [], []
      t_log, step_log = time.monotonic(), step
    progress.update(step, f"epoch {epoch + 1}/{config.num_epochs}", logged)
    due = (_due_evaluations(config, epoch + 1,
                            last=step == training.total_steps)
           if epoch_end else [])
    evaluate_now = bool(due)
    if evaluate_now:
      if not results:
        log.info("evaluating %s (the first evaluation compiles)",
                 ", ".join(due))
      results = {name: training.evaluators[name](
          variables(state, training.evaluators[name].weights)) for name in due}
      for name, r in results.items():
        writer.write(step, name, r)
      value = _plateau_value(config, results)
      if value is not None:
        plateau = parallel.unreplicate(state.plateau)
        p = config.optimizer.plateau
        new = optimizer_lib.plateau_update(
            jax.device_get(plateau), value, mode=p.mode, factor=p.factor,
            patience=p.patience, min_scale=p.min_scale)
        state = state.replace(plateau=parallel.replicate(new))
      log.info("%s", _eval_line(step, results))
    # Every evaluation, and so the last step, falls on an epoch end. A new
    # best is saved whatever the cadence: the best checkpoint is never lost.
    saved = _scalar_metrics(results) if evaluate_now else {}
    if save_now or ckpt.improves(saved):
      divergence.check_state(step, parallel.unreplicate(state), ckpt)
      if pending_device:
        window += _fetch(parallel, pending_device)
        pending_device = []
      if window:
        saved[_WINDOW] = {k: [float(m[k]) for m in window] for k in window[0]}
      ckpt.save(step, parallel.unreplicate(state), saved)
  progress.close()
  ckpt.wait()
  if not results:
    results = {name: ev(variables(state, ev.weights))
               for name, ev in training.evaluators.items()}
  return results
