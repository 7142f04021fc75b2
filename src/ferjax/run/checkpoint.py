"""Orbax checkpoints of the TrainState: latest N plus the best by a metric.

Orbax writes each step to a temporary directory and renames it when
complete, so a ``kill -9`` during a save leaves the previous checkpoints
intact and the half-written one invisible. What Orbax does not see is a
checkpoint damaged later (a flipped bit, a truncated copy): restoring it can
give silently wrong numbers. So the SHA-256 of every file of every step is
recorded as soon as Orbax commits it (``checksums.json``; the trainer asks
after every step, and a thread of its own hashes, so training never waits
for it) and verified before a restore; a damaged step is refused
with the file that does not match. A step without recorded checksums (saved
before they existed, or committed just before a ``kill -9``) is restored
with a warning naming it unverified, and it stays unverified: only the
process that saved a step records its checksums. Restored variables that
are not finite (the trainer never saves such) are refused.
"""

import concurrent.futures
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import pathlib
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from ferjax import atomic
from ferjax.run import files

log = logging.getLogger(__name__)

_CHECKSUMS = "checksums.json"


class CorruptCheckpoint(ValueError):
  """A saved step whose files do not match their checksums or cannot be read."""


def sha256(path: pathlib.Path) -> str:
  """The SHA-256 of a file, read in blocks (checkpoints can be large)."""
  digest = hashlib.sha256()
  with path.open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def check_finite(step_dir: pathlib.Path, tree: Any) -> None:
  """Raises CorruptCheckpoint naming the first variable of ``tree`` (restored
  from ``step_dir``) that holds a NaN or an infinity.

  Training never saves such a state (``train.divergence``), so in a
  checkpoint they mean damage (e.g. a flipped exponent bit in a step that
  has no checksums to catch it) or a diverged run of a ferjax from before
  that check; either way its outputs would be meaningless.
  """
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = np.asarray(leaf)
    if (jax.numpy.issubdtype(array.dtype, jax.numpy.inexact)
        and not np.isfinite(array).all()):
      raise CorruptCheckpoint(
          f"checkpoint {step_dir}: {jax.tree_util.keystr(path)} holds "
          "non-finite values (NaN or infinity): it is damaged, or a diverged "
          "run's from before ferjax checked for divergence")


def _file_hashes(step_dir: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(step_dir)): sha256(p)
          for p in sorted(step_dir.rglob("*")) if p.is_file()}


_JSON_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metrics")


def _damaged_json(step_dir: pathlib.Path) -> CorruptCheckpoint | None:
  """The error for the first of Orbax's JSON files in a step that is damaged.

  Checked before Orbax reads a step without checksums: Orbax's own errors
  for these do not name the file, and a failed read can leave its
  background threads to print tracebacks at exit.
  """
  for path in sorted(step_dir.rglob("*")):
    if path.is_file() and (path.name in _JSON_FILES or
                           path.parent.name == "array_metadatas"):
      try:
        json.loads(path.read_bytes())
      except (json.JSONDecodeError, UnicodeDecodeError):
        return CorruptCheckpoint(
            f"checkpoint {step_dir}: {path.relative_to(step_dir)} is not "
            "valid JSON (the file is damaged)")
  return None


# What Orbax says on every read-only open: how it opened, not a problem.
_READ_ONLY_NOTES = ("CheckpointManagerOptions.read_only=True",
                    "Given directory is read only")


class _ReadOnlyNotes(logging.Filter):
  """Drops Orbax's read-only notes from the ``absl`` logger, nothing else."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_READ_ONLY_NOTES)


def _quiet_read_only_notes() -> None:
  """Loading the bundled model from Python prints no absl warnings."""
  absl_log = logging.getLogger("absl")
  if not any(isinstance(f, _ReadOnlyNotes) for f in absl_log.filters):
    absl_log.addFilter(_ReadOnlyNotes())


def _quiet_late_reads() -> None:
  """Drops the 'Event loop is closed' reports that follow a failed restore.

  When one read of a damaged step fails, Orbax's event loop closes while the
  step's other tensorstore reads are in flight; each reports the closed loop
  through ``sys.unraisablehook`` as it completes, after the real error was
  raised. Everything else still reaches the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, "ferjax_quiet", False):
    return

  def hook(unraisable: Any) -> None:
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and
            str(error) == "Event loop is closed"):
      previous(unraisable)

  hook.ferjax_quiet = True
  sys.unraisablehook = hook
  # tensorstore's callbacks report the same through PyErr_Print, which
  # calls sys.excepthook.
  previous_excepthook = sys.excepthook

  def excepthook(kind: Any, value: Any, traceback: Any) -> None:
    if not (isinstance(value, RuntimeError) and
            str(value) == "Event loop is closed"):
      previous_excepthook(kind, value, traceback)

  sys.excepthook = excepthook


@contextlib.contextmanager
def _write_errors(directory: pathlib.Path) -> Iterator[None]:
  """A failed (asynchronous) write as one error: a full disk is an OSError
  naming the directory, and the closed-loop reports that trail it are
  dropped, as after a failed read."""
  try:
    yield
  except (ValueError, RuntimeError, OSError) as e:
    _quiet_late_reads()
    if "No space left on device" in str(e):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                    str(directory)) from None
    raise


def _unreadable(step_dir: pathlib.Path, error: Exception) -> CorruptCheckpoint:
  _quiet_late_reads()
  first = str(error).splitlines()[0] if str(error) else ""
  return CorruptCheckpoint(f"checkpoint {step_dir} cannot be read "
                           f"({type(error).__name__}: {first})")


class Checkpoints:
  """The run's checkpoint directory."""

  def __init__(self, directory: str | pathlib.Path, *, keep: int = 2,
               best_metric: str | None = None, best_mode: str = "max",
               read_only: bool = False, use_ocdbt: bool = True):
    """``use_ocdbt=False`` writes one file per array instead of OCDBT's one
    data file per step (reading detects either): for a model shipped in a
    repository, where no single file should grow with the model."""
    self.directory = pathlib.Path(directory).absolute()
    # A failed write or read is reported once, by the exception it raises.
    _quiet_late_reads()
    _quiet_read_only_notes()
    self.best_metric = best_metric
    self._best_mode = best_mode
    self._read_only = read_only
    # Steps this process saved whose checksums are not recorded yet.
    self._unrecorded: set[int] = set()
    # Hashing a step of hundreds of MB takes seconds: one thread does it
    # (and writes checksums.json), in order, while training goes on.
    self._hasher = concurrent.futures.ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="ferjax-checksums")
    self._hashing: concurrent.futures.Future | None = None
    worst = float("-inf") if best_mode == "max" else float("inf")

    def score(metrics: dict[str, Any]) -> float:
      # Mid-epoch checkpoints carry no eval metric: they rank last.
      return metrics.get(best_metric, worst)

    policies = [checkpoint_managers.LatestN(n=keep)]
    if best_metric:
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=score, reverse=best_mode == "min", n=1))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(
                policies),
            # best_fn makes Orbax store each step's metrics next to it, so
            # `best` survives a restart.
            best_fn=score if best_metric else None, best_mode=best_mode,
            read_only=read_only, create=not read_only,
            enable_async_checkpointing=True),
        item_handlers=ocp.StandardCheckpointHandler(use_ocdbt=use_ocdbt))

  def __enter__(self) -> "Checkpoints":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def metrics(self, step: int) -> dict[str, Any]:
    """What was saved with ``step`` (eval scalars, the train window)."""
    try:
      return dict(self._manager.metrics(step) or {})
    except (ValueError, OSError, TypeError):
      return {}

  def best_step(self) -> int | None:
    """The step with the best ``best_metric``; the latest if none has one."""
    scored = []
    for step in self._manager.all_steps():
      metrics = self.metrics(step)
      if self.best_metric in metrics:
        scored.append((float(metrics[self.best_metric]), step))
    if not scored:
      return self.latest_step()
    sign = 1.0 if self._best_mode == "max" else -1.0
    return max(scored, key=lambda t: (sign * t[0], -t[1]))[1]

  def improves(self, metrics: dict[str, Any]) -> bool:
    """Whether ``metrics`` beat every saved step's ``best_metric``."""
    if not self.best_metric or self.best_metric not in metrics:
      return False
    best = self.best_step()
    saved = self.metrics(best) if best is not None else {}
    if self.best_metric not in saved:
      return True
    new, old = float(metrics[self.best_metric]), float(saved[self.best_metric])
    return new > old if self._best_mode == "max" else new < old

  def save(self, step: int, state: Any, metrics: dict[str, Any] | None = None,
           *, unverified: bool = False) -> None:
    """Saves asynchronously; training goes on while Orbax writes.

    ``record_committed`` (or the next save, ``wait`` or ``close``) records
    its checksums once Orbax has committed it; with ``unverified`` (a state
    read from an unverified checkpoint) none are, so it stays unverified
    rather than getting checksums of possibly damaged values.
    """
    with _write_errors(self.directory):
      self._hash_committed()
      self._manager.save(step, args=ocp.args.StandardSave(state),
                         metrics=dict(metrics or {}), force=True)
      if not unverified:
        self._unrecorded.add(step)

  def record_committed(self) -> None:
    """Has the checksums of the steps saved here recorded once Orbax
    committed them; never waits: neither for a save being written nor for
    the hashing, which runs on a thread of its own."""
    with _write_errors(self.directory):
      self._hash_committed()

  def _hash_committed(self) -> None:
    """Hands the committed unrecorded steps to the hashing thread."""
    if self._hashing is not None and self._hashing.done():
      hashing, self._hashing = self._hashing, None
      hashing.result()  # A failed write is raised here, once.
    if self._unrecorded and not self._manager.is_saving_in_progress():
      self._submit_hashing()

  def _submit_hashing(self) -> None:
    saved, self._unrecorded = self._unrecorded, set()
    if self._read_only or jax.process_index():
      return
    steps = {str(s) for s in self._manager.all_steps()}
    previous = self._hashing
    self._hashing = self._hasher.submit(self._write_checksums, saved, steps,
                                        previous)

  def _checksums_path(self) -> pathlib.Path:
    return self.directory / _CHECKSUMS

  def _read_checksums(self) -> dict[str, dict[str, str]] | None:
    """Recorded checksums by step; None for a run saved before them."""
    path = self._checksums_path()
    if not path.exists():
      return None
    try:
      recorded = json.loads(files.read_text(path))
    except files.RunFileError as e:
      raise CorruptCheckpoint(f"{e}; the checkpoints cannot be verified"
                              ) from None
    except json.JSONDecodeError as e:
      raise CorruptCheckpoint(
          f"{path}: not valid JSON ({e}); the checkpoints cannot be "
          "verified") from None
    return recorded if isinstance(recorded, dict) else {}

  def _record_checksums(self) -> None:
    """Records the checksums of every step saved here, and returns when they
    are written (the hashing thread's work included)."""
    if self._read_only:
      return
    self._manager.wait_until_finished()
    self._submit_hashing()
    hashing, self._hashing = self._hashing, None
    if hashing is not None:
      hashing.result()

  def _write_checksums(self, saved: set[int], steps: set[str],
                       previous: concurrent.futures.Future | None) -> None:
    """Hashes the completed steps ``saved`` here; drops deleted steps.

    Runs on the hashing thread, after ``previous``, whose error it passes
    on (nobody else waits for it). ``steps`` are those on disk when Orbax
    had committed them. A step found on disk without checksums is left so:
    hashing it now would vouch for whatever it holds today.
    """
    if previous is not None:
      previous.result()
    recorded = self._read_checksums() or {}
    updated = {s: h for s, h in recorded.items() if s in steps}
    for step in {str(s) for s in saved} & steps:
      try:
        updated[step] = _file_hashes(self.directory / step)
      except FileNotFoundError:  # Deleted by a later save's keep policy.
        updated.pop(step, None)
    if updated != recorded or not self._checksums_path().exists():
      atomic.write_text(self._checksums_path(),
                        json.dumps(updated, indent=1, sort_keys=True) + "\n")

  def is_verified(self, step: int) -> bool:
    """Whether ``step`` has recorded checksums to be verified against."""
    return str(step) in (self._read_checksums() or {})

  def verify(self, step: int) -> None:
    """Raises CorruptCheckpoint if a file of ``step`` changed since saved;
    warns that a step without recorded checksums is used unverified."""
    step_dir = self.directory / str(step)
    recorded = (self._read_checksums() or {}).get(str(step))
    if recorded is None:
      damaged = _damaged_json(step_dir)
      if damaged is not None:
        raise damaged
      log.warning(
          "checkpoint %s is unverified: %s records no checksums for it "
          "(saved before ferjax recorded them, or its run was killed before "
          "it could); a damaged file in it may go unnoticed", step_dir,
          self._checksums_path())
      return
    actual = _file_hashes(step_dir)
    for name, digest in recorded.items():
      if name not in actual:
        raise CorruptCheckpoint(f"checkpoint {step_dir}: {name} is missing")
      if actual[name] != digest:
        raise CorruptCheckpoint(
            f"checkpoint {step_dir}: {name} does not match the checksum "
            "recorded when it was saved (the file is damaged)")

  def _read(self, step: int, template: Any) -> Any:
    """Restores a verified ``step`` shaped like ``template``."""
    try:
      return self._manager.restore(
          step, args=ocp.args.StandardRestore(template))
    except Exception as e:  # Orbax raises many types for unreadable files.
      raise _unreadable(self.directory / str(step), e) from None

  def _saved_tree(self, step: int) -> dict[str, Any]:
    """The metadata of ``step``'s saved tree: its fields, shapes, dtypes."""
    try:
      return dict(self._manager.item_metadata(step))
    except Exception as e:  # A damaged _METADATA, in any of Orbax's ways.
      raise _unreadable(self.directory / str(step), e) from None

  def restore(self, step: int, template: Any) -> Any:
    """Restores ``step`` as host numpy arrays shaped like ``template``.

    A train state field added after the step was written (``ema``) is not
    in it: it keeps the template's value when that is empty (the feature
    is off); a state that needs it is refused, naming the field.
    """
    abstract = jax.tree.map(
        lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), template)
    self.verify(step)
    if not dataclasses.is_dataclass(abstract):
      return jax.device_get(self._read(step, abstract))
    saved = self._saved_tree(step)
    names = [f.name for f in dataclasses.fields(abstract)]
    missing = [n for n in names if n not in saved]
    for name in missing:
      if jax.tree.leaves(getattr(abstract, name)):
        raise ValueError(
            f"checkpoint {self.directory / str(step)} holds no {name!r}: it "
            "was written by a run without it, so this run cannot resume it")
    if not missing:
      return jax.device_get(self._read(step, abstract))
    restored = self._read(step, {n: getattr(abstract, n) for n in names
                                 if n in saved})
    return jax.device_get(abstract.replace(**restored))

  def restore_variables(self, step: int,
                        weights: str = "raw") -> dict[str, Any]:
    """Just the model variables of ``step``, without building a TrainState.

    Inference needs no optimizer; the saved tree is read back as plain dicts.
    ``weights`` 'ema' gives the moving average of the variables instead of
    the variables, for a run trained with ``optimizer.ema_decay``.
    """
    self.verify(step)
    template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                            self._saved_tree(step))
    restored = self._read(step, template)
    if weights == "ema":
      if not jax.tree.leaves(restored.get("ema")):
        raise ValueError(
            f"checkpoint {self.directory / str(step)} holds no moving "
            "average of the weights (its run had optimizer.ema_decay=0); "
            "evaluate weights='raw'")
      restored = restored["ema"]
    variables = {"params": restored["params"],
                 "batch_stats": restored.get("batch_stats") or {}}
    check_finite(self.directory / str(step), variables)
    return variables

  def set_aside(self, step: int, where: pathlib.Path) -> pathlib.Path:
    """Moves a damaged step out of the checkpoints (kept for inspection)."""
    where.mkdir(parents=True, exist_ok=True)
    target = where / str(step)
    for i in range(2, 1000):
      if not target.exists():
        break
      target = where / f"{step}.{i}"
    shutil.move(str(self.directory / str(step)), target)
    self._manager.reload()
    return target

  def wait(self) -> None:
    with _write_errors(self.directory):
      self._manager.wait_until_finished()
      self._record_checksums()

  def close(self) -> None:
    try:
      with _write_errors(self.directory):
        self._record_checksums()
        self._manager.close()
    finally:
      self._hasher.shutdown(wait=True)
