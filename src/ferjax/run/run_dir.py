"""The run directory: the one module that knows what a run leaves on disk.

  config.json     the resolved config: what the user wrote plus the fields
                  the trainer resolved (``input.mean``/``std``)
  manifest.json   seed, dataset and one record per session (run.manifest)
  metrics.jsonl   one JSON event per line, ``{"step", "split", ...}``
  events.out.tfevents.*
                  the same scalars for TensorBoard, in the run's own folder
                  so that ``tensorboard --logdir SWEEP`` names each trial
                  (older runs keep them in ``tensorboard/``)
  checkpoints/    Orbax steps with their checksums (run.checkpoint)
  calibration.json  softmax temperatures by checkpoint step (``calibrate``)
  reliability.png   its reliability diagram before and after
  .lock           held (``flock``) by the one process writing the run

Training, evaluation, inference, transfer, sweeps, reports, reproductions
and the torchvision converters all read and write runs through ``RunDir``;
no other module names these files. Every file read names itself in its
error, so a corrupt run is reported, never a bare ``json`` message; every
file is read and written by the rule of ``ferjax.run.files`` (regular files
of bounded size; atomic writes, new files never over old ones). A saved
config is upgraded once, here, as it is read (``config.upgrade``: the fields
of later versions at the values that reproduce the earlier behaviour).
Opening a run's model (config, checkpoint, model) is ``run.model``'s.
"""

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import ml_collections

from ferjax import atomic
from ferjax import calibration as calibration_lib
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax import filelock
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.run import files
from ferjax.run import manifest as manifest_lib
from ferjax.run.metric_writer import MetricWriter, parse_events

log = logging.getLogger(__name__)

_CONFIG = "config.json"
_MANIFEST = "manifest.json"
_METRICS = "metrics.jsonl"
_LOCK = ".lock"
_CROSSVAL = "crossval.json"
_CHECKPOINTS = "checkpoints"
_TENSORBOARD = "tensorboard"
_CORRUPT_CHECKPOINTS = "corrupt_checkpoints"
_CALIBRATION = "calibration.json"
_RELIABILITY = "reliability.png"

# The folders a run writes that hold no runs, for walks over a tree of runs.
RECORD_FOLDERS = (_CHECKPOINTS, _TENSORBOARD, _CORRUPT_CHECKPOINTS)
# A process that inherits a run's lock (a sweep's trial) finds its fd here.
LOCK_FD_ENV = "FERJAX_RUN_LOCK_FD"
# Fields the trainer fills in when the config leaves them None.
RESOLVED_FIELDS = ("input.mean", "input.std")


class RunDirError(ValueError):
  """A run directory file that is missing, unreadable or not what ferjax wrote."""


class RunDirBusy(RunDirError):
  """Another live process is writing the run directory."""


def read_json(path: str | os.PathLike) -> Any:
  """A JSON file's content; errors name the file and what is wrong with it
  (``files.read_text``: only a regular file of bounded size is read)."""
  path = pathlib.Path(path)
  try:
    return json.loads(files.read_text(path))
  except FileNotFoundError:
    raise
  except files.RunFileError as e:
    raise RunDirError(str(e)) from None
  except json.JSONDecodeError as e:
    raise RunDirError(f"{path}: not valid JSON ({e}); the file is corrupt"
                      ) from None


def _leaf(tree: Mapping[str, Any], dotted: str) -> Any:
  for part in dotted.split("."):
    if not isinstance(tree, Mapping):
      return None
    tree = tree.get(part)
  return tree


def _check_calibration(path: pathlib.Path, record: Any) -> dict[str, Any]:
  """``record`` if it is one temperature scaling as calibrate writes it.

  A temperature outside the range calibrate fits is damage (1e300 would
  flatten every score to 1/C, 1e-300 overflow them), never trusted.
  """
  temperature = record.get("temperature") if isinstance(
      record, dict) else None
  if (not isinstance(temperature, (int, float))
      or isinstance(temperature, bool) or not temperature > 0
      or not isinstance(record.get("step"), int)
      or temperature == float("inf")):
    raise RunDirError(
        f"{path}: expected a JSON object with a positive finite "
        "'temperature' and the checkpoint's integer 'step', as 'ferjax "
        "calibrate' writes; the file is corrupt (run calibrate again)")
  low, high = calibration_lib.TEMPERATURE_RANGE
  if not low <= temperature <= high:
    raise RunDirError(
        f"{path}: temperature {temperature!r} of step {record['step']} is "
        f"outside [{low:g}, {high:g}], the range 'ferjax calibrate' fits "
        "in; the file is damaged (run calibrate again)")
  return record


@dataclasses.dataclass(frozen=True)
class RunDir:
  """A run directory (which need not exist yet)."""

  path: pathlib.Path

  def __init__(self, path: str | os.PathLike):
    object.__setattr__(self, "path", pathlib.Path(path))

  @property
  def checkpoints_path(self) -> pathlib.Path:
    return self.path / _CHECKPOINTS

  @property
  def tensorboard_path(self) -> pathlib.Path:
    """Where TensorBoard events go: the run's folder, so that TensorBoard
    names the run by it; an older run resumed keeps its ``tensorboard/``."""
    legacy = self.path / _TENSORBOARD
    return legacy if legacy.is_dir() else self.path

  @property
  def corrupt_checkpoints_path(self) -> pathlib.Path:
    """Where checkpoints that fail their checksums are set aside."""
    return self.path / _CORRUPT_CHECKPOINTS

  @property
  def crossval_path(self) -> pathlib.Path:
    """The mean and std over the folds of a cross-validation."""
    return self.path / _CROSSVAL

  @property
  def reliability_diagram_path(self) -> pathlib.Path:
    """The reliability diagram that ``ferjax calibrate`` draws."""
    return self.path / _RELIABILITY

  def read_calibrations(self) -> dict[int, dict[str, Any]]:
    """The stored temperature scalings by checkpoint step, in the order
    they were fitted (``write_calibration``); {} without calibration.json.

    A file that is not what calibrate wrote is an error naming it: scores
    silently left uncalibrated would be reported as calibrated ones. A file
    of an earlier ferjax holds one record, read as the only step.
    """
    path = self.path / _CALIBRATION
    if not path.exists() and not path.is_symlink():
      return {}
    stored = read_json(path)
    if isinstance(stored, dict) and "by_step" in stored:
      records = stored["by_step"]
      if not isinstance(records, dict):
        raise RunDirError(f"{path}: by_step: expected an object of records "
                          "by checkpoint step; the file is corrupt")
      records = list(records.values())
    else:
      records = [stored]
    return {r["step"]: r for r in
            (_check_calibration(path, r) for r in records)}

  def read_calibration(self, step: int | None = None
                       ) -> dict[str, Any] | None:
    """The temperature scaling fitted for ``step`` (default: the last one
    fitted, of any step), or None."""
    records = self.read_calibrations()
    if step is None:
      return next(reversed(records.values()), None)
    return records.get(step)

  def temperature(self, step: int) -> float | None:
    """The stored softmax temperature if one was fitted for ``step``."""
    record = self.read_calibration(step)
    return record["temperature"] if record else None

  def write_calibration(self, record: dict[str, Any]) -> pathlib.Path:
    """Stores a temperature scaling (``temperature``, ``step``, ...)
    atomically beside those of other steps (one per step: calibrating a
    step again replaces its own); returns the file's path."""
    path = self.path / _CALIBRATION
    try:
      records = self.read_calibrations()
    except RunDirError as e:  # Damage: what calibrate is run to replace.
      log.warning("%s; replacing it with step %d's record", e, record["step"])
      records = {}
    records.pop(record["step"], None)
    records[record["step"]] = _check_calibration(path, record)
    atomic.write_text(path, json.dumps(
        {"by_step": {str(s): r for s, r in records.items()}}, indent=2)
                      + "\n")
    return path

  def fold(self, index: int) -> "RunDir":
    """The run directory of one fold of a cross-validation."""
    return RunDir(self.path / f"fold_{index}")

  def contains(self, path: str | os.PathLike) -> bool:
    """Whether ``path`` is this directory or lies inside it (links
    resolved): a new run there would be nested in this one."""
    inner, outer = pathlib.Path(path).resolve(), self.path.resolve()
    return inner == outer or outer in inner.parents

  def has_config(self) -> bool:
    return (self.path / _CONFIG).is_file()

  def is_run(self) -> bool:
    """Whether the directory holds any record a run writes."""
    return any((self.path / name).exists()
               for name in (_CONFIG, _MANIFEST, _METRICS, _CHECKPOINTS))

  def _require(self, name: str) -> pathlib.Path:
    path = self.path / name
    if not path.is_file():
      raise FileNotFoundError(
          f"{self.path} is not a ferjax run directory: {path} does not exist")
    return path

  # The config.

  def read_config_dict(self) -> dict[str, Any]:
    """config.json as written, without the fields of later ferjax versions."""
    saved = read_json(self._require(_CONFIG))
    if not isinstance(saved, dict):
      raise RunDirError(f"{self.path / _CONFIG}: expected a JSON object")
    return saved

  def read_config(self) -> ml_collections.ConfigDict:
    """The run's config, completed for this ferjax version.

    A run written by an earlier version lacks the fields added since; they
    get the values that reproduce that version's behaviour
    (``config.LEGACY_VALUES``), so old runs resume, evaluate and predict.
    Normalisation statistics no trainer writes (an ``input.mean`` of NaN,
    a hand edit) are a RunDirError naming the field, before they can give
    meaningless numbers.
    """
    upgraded, _ = config_lib.upgrade(self.read_config_dict())
    config = config_lib.from_dict(upgraded)
    # A hand-edited file fails here in one line, not deep in a command.
    try:
      config_checks.validate(config, converted=self._converted(config))
    except config_lib.ConfigError as e:
      raise RunDirError(f"{self.path / _CONFIG}: {e}") from None
    except (TypeError, AttributeError, KeyError) as e:
      raise RunDirError(f"{self.path / _CONFIG}: a field holds a value of the "
                        f"wrong type ({e})") from None
    return config

  def _converted(self, config: ml_collections.ConfigDict) -> bool:
    """Whether ``write_imported`` wrote this run from other weights, whose
    config names a dataset without a builder here."""
    inp = config.get("input")
    if not isinstance(inp, ml_collections.ConfigDict) or inp.get(
        "dataset") not in config_checks.CONVERTED_DATASETS:
      return False
    path = self.path / _MANIFEST
    manifest = read_json(path) if path.is_file() else None
    return isinstance(manifest, dict) and "converted_from" in manifest

  def legacy_fields(self) -> dict[str, Any]:
    """Fields config.json lacks, with the values they are read with."""
    if not self.has_config():
      return {}
    return config_lib.upgrade(self.read_config_dict())[1]

  def write_config(self, config: ml_collections.ConfigDict) -> None:
    atomic.write_text(self.path / _CONFIG, config_lib.to_json(config) + "\n")

  def resumable_config(self, config: ml_collections.ConfigDict
                       ) -> ml_collections.ConfigDict:
    """``config`` completed for training here; raises if another experiment.

    Fields ``config`` lacks (an experiment file written for an earlier
    ferjax) get their legacy values. When the directory already holds a
    run: fields that say where a run executes may change; fields the trainer
    resolved are taken from the run when ``config`` leaves them None; fields
    the run's own ferjax version did not have keep their legacy values (the
    run continues as it started); any other difference is refused.
    """
    wanted, _ = config_lib.upgrade(config.to_dict())
    if not self.has_config():
      return config_lib.from_dict(wanted)
    upgraded, legacy = config_lib.upgrade(self.read_config_dict())
    for field in RESOLVED_FIELDS:
      if _leaf(wanted, field) is None:
        config_lib.set_field(wanted, field, _leaf(upgraded, field))
    for field, value in legacy.items():
      config_lib.set_field(wanted, field, value)
    differing = [f for f in config_lib.differing_fields(upgraded, wanted)
                 if not f.startswith(config_lib.WHERE_FIELDS)]
    if differing:
      raise RunDirError(
          f"{self.path} already holds a run with a different config "
          f"(fields: {', '.join(differing)}); use a new --workdir")
    return config_lib.from_dict(wanted)

  # The manifest: one session per process that trained the run.

  def read_manifest(self) -> dict[str, Any]:
    """manifest.json, with the fields commands read checked where present."""
    manifest = read_json(self._require(_MANIFEST))
    path = self.path / _MANIFEST
    if not isinstance(manifest, dict) or not isinstance(
        manifest.get("sessions"), list) or not all(
            isinstance(s, dict) for s in manifest["sessions"]):
      raise RunDirError(f"{path}: expected a JSON object with a list of "
                        "sessions")
    dataset = manifest.get("dataset", {})
    if not isinstance(dataset, dict):
      raise RunDirError(f"{path}: dataset: expected an object with "
                        f"class_names and image_shape, got {dataset!r}")
    names = dataset.get("class_names")
    if "class_names" in dataset and not (
        isinstance(names, list) and len(names) >= 2
        and all(isinstance(n, str) and n for n in names)
        and len(set(names)) == len(names)):
      raise RunDirError(f"{path}: dataset.class_names: expected a list of two "
                        f"or more distinct names, got {names!r}")
    shape = dataset.get("image_shape")
    if "image_shape" in dataset and not (
        isinstance(shape, list) and len(shape) == 3
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                for d in shape) and shape[2] in (1, 3)):
      raise RunDirError(f"{path}: dataset.image_shape: expected [height, "
                        f"width, 1 or 3 channels], got {shape!r}")
    return manifest

  def dataset(self) -> dict[str, Any]:
    """The manifest's dataset record, which must name the classes and the
    stored image shape (what inference needs)."""
    dataset = self.read_manifest().get("dataset", {})
    missing = [k for k in ("class_names", "image_shape") if k not in dataset]
    if missing:
      raise RunDirError(f"{self.path / _MANIFEST}: dataset lacks "
                        f"{', '.join(missing)}")
    return dataset

  def start_session(self, *, argv: list[str], start_step: int, seed: int,
                    dataset: dict[str, Any],
                    init_from: dict[str, Any] | None = None,
                    legacy: dict[str, Any] | None = None) -> dict[str, Any]:
    """Creates or extends the manifest with this process's session.

    ``init_from`` records where a new run's starting variables came from (a
    resumed run keeps its first session's record); ``legacy`` the config
    fields this run's config.json lacked and the values used for them.
    """
    manifest = (self.read_manifest() if (self.path / _MANIFEST).exists()
                else {"seed": seed, "dataset": dataset, "sessions": []})
    if init_from is not None:
      manifest["init_from"] = init_from
    if legacy:
      manifest["legacy_fields"] = {**manifest.get("legacy_fields", {}),
                                   **legacy}
    manifest["sessions"].append(manifest_lib.session_record(argv, start_step))
    self._write_manifest(manifest)
    return manifest

  def finish_session(self, manifest: dict[str, Any], *, end_step: int,
                     error: str | None = None) -> None:
    """Closes the session: finished, or failed with ``error``."""
    session = manifest["sessions"][-1]
    session["end_time"] = manifest_lib.now()
    session["end_step"] = end_step
    if error is not None:
      session["error"] = error
    self._write_manifest(manifest)

  def _write_manifest(self, manifest: dict[str, Any]) -> None:
    atomic.write_text(self.path / _MANIFEST,
                      json.dumps(manifest, indent=2) + "\n")

  def status(self) -> str:
    """'finished', 'failed', 'running' or 'unfinished' (killed, or new)."""
    if self.holder() is not None:
      return "running"
    return self._ended()

  def _ended(self) -> str:
    """'finished', 'failed' or 'unfinished', from the last session.

    The trainer closes a session only after the final evaluation and
    checkpoint (or with the error that stopped it), so a killed run never
    looks finished.
    """
    try:
      sessions = self.read_manifest()["sessions"]
    except (FileNotFoundError, RunDirError):
      return "unfinished"
    last = sessions[-1] if sessions else {}
    if last.get("end_time") is None:
      return "unfinished"
    return "failed" if last.get("error") else "finished"

  def is_finished(self) -> bool:
    return self._ended() == "finished"

  # Metrics.

  def metric_writer(self, *, enabled: bool = True) -> MetricWriter:
    return MetricWriter(self.path / _METRICS, self.tensorboard_path,
                        enabled=enabled)

  def events(self) -> list[dict[str, Any]]:
    """Every metric event in order (see ``read_events``)."""
    return self.read_events()[0]

  def read_events(self) -> tuple[list[dict[str, Any]], str | None]:
    """Every metric event in order, and a note if a torn last line was left
    out (a process killed while writing it; the trainer drops it on resume).

    Any other line that is not an event is a RunDirError naming it: skipping
    it would change a run's numbers without a word.
    """
    path = self.path / _METRICS
    try:
      events, torn = parse_events(files.read_bytes(
          path, files.MAX_METRICS_BYTES))
    except FileNotFoundError:
      return [], None
    except files.RunFileError as e:
      raise RunDirError(str(e)) from None
    except ValueError as e:
      raise RunDirError(f"{path}: {e}") from None
    note = (f"{_METRICS}: line {torn} is torn (cut off mid-write) and left "
            "out; final values are from before it") if torn else None
    return events, note

  # Checkpoints.

  def checkpoints(self, config: ml_collections.ConfigDict | None = None, *,
                  read_only: bool = True,
                  use_ocdbt: bool = True) -> checkpoint_lib.Checkpoints:
    """The run's checkpoints, ranked for 'best' as ``config`` says."""
    if read_only and not self.checkpoints_path.is_dir():
      raise FileNotFoundError(
          f"{self.path} holds no checkpoints ({self.checkpoints_path})")
    ckpt = config.checkpoint if config is not None else None
    return checkpoint_lib.Checkpoints(
        self.checkpoints_path, keep=ckpt.keep if ckpt else 2,
        best_metric=ckpt.best_metric if ckpt else None,
        best_mode=ckpt.best_mode if ckpt else "max", read_only=read_only,
        use_ocdbt=use_ocdbt)

  def resolve_step(self, ckpt: checkpoint_lib.Checkpoints,
                   which: str | int) -> int:
    """'best', 'latest' or a step number, resolved to a saved step."""
    which = str(which)
    if which == "best":
      step = ckpt.best_step()
    elif which == "latest":
      step = ckpt.latest_step()
    elif which.isdigit():
      step = int(which)
      if step not in ckpt.all_steps():
        raise FileNotFoundError(
            f"{self.path}: no checkpoint at step {step}; saved steps: "
            f"{', '.join(map(str, ckpt.all_steps())) or 'none'}")
    else:
      raise ValueError(f"--checkpoint: expected best, latest or a step "
                       f"number, got {which!r}")
    if step is None:
      raise FileNotFoundError(f"{self.path} holds no checkpoint yet")
    return step

  def best_checkpoint(self) -> tuple[dict[str, int | None], str | None,
                                     dict[str, float]]:
    """({'final', 'best'} steps, the selecting metric, the best's metrics).

    The metrics are those saved with the best step: its evaluations' scalars.
    """
    config = self.read_config()
    with self.checkpoints(config) as ckpt:
      best = ckpt.best_step()
      saved = ckpt.metrics(best) if best is not None else {}
      steps = {"final": ckpt.latest_step(), "best": best}
    scalars = {k: float(v) for k, v in saved.items()
               if isinstance(v, (int, float))}
    return steps, config.checkpoint.best_metric or None, scalars

  # The writer's lock.

  def holder(self) -> str | None:
    """Who holds the run's lock ('process 123 (ferjax train ...)'), or None."""
    path = self.path / _LOCK
    if not path.exists():
      return None
    fd = filelock.try_lock(path)
    if fd is not None:
      os.close(fd)
      return None
    try:
      text = files.read_text(path, 4096).strip()
    except (OSError, files.RunFileError):
      text = ""
    return text or "another process"

  def try_lock(self) -> int | None:
    """The run's lock as an fd, or None when a live process holds it."""
    self.path.mkdir(parents=True, exist_ok=True)
    return filelock.try_lock(self.path / _LOCK)

  @contextlib.contextmanager
  def lock(self, argv: list[str] | None = None) -> Iterator[None]:
    """Holds the run's lock for the block: one writer per run directory.

    The lock is an ``flock``, released by the OS when the process dies, so a
    ``kill -9`` leaves nothing stale. A sweep takes its trials' locks and
    hands each to its ``ferjax train`` process (``LOCK_FD_ENV``).
    """
    path = self.path / _LOCK
    created = not self.path.exists()
    fd = inherited = self._inherited_lock(path)
    if fd is None:
      fd = self.try_lock()
    if fd is None:
      raise RunDirBusy(
          f"{self.path} is in use by {self.holder() or 'another process'}; "
          "one process writes a run directory at a time: wait for it to "
          "finish or stop it, or use another --workdir")
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, f"process {os.getpid()} ({' '.join(argv or [])})\n"
                .encode(), 0)
      yield
    except BaseException:
      if inherited is None:
        self._remove_if_untouched(created)
      raise
    finally:
      os.close(fd)

  def _remove_if_untouched(self, created: bool) -> None:
    """After a failed start (a missing dataset, a bad config): the lock, and
    the directory if this process made it, when nothing else was written."""
    try:
      if [p.name for p in self.path.iterdir()] == [_LOCK]:
        (self.path / _LOCK).unlink()
        if created:
          self.path.rmdir()
    except OSError:
      pass  # Left as it was: the lock file is harmless.

  @staticmethod
  def _inherited_lock(path: pathlib.Path) -> int | None:
    value = os.environ.get(LOCK_FD_ENV)
    if not value or not value.isdigit() or not path.exists():
      return None
    try:
      ours, theirs = os.fstat(int(value)), path.stat()
    except OSError:
      return None
    if (ours.st_dev, ours.st_ino) != (theirs.st_dev, theirs.st_ino):
      return None
    return os.dup(int(value))


def write_imported(out: str | os.PathLike, config: ml_collections.ConfigDict,
                   variables: dict[str, Any], *, class_names: list[str],
                   image_shape: tuple[int, int, int],
                   source_file: pathlib.Path, source: dict[str, Any],
                   argv: list[str]) -> pathlib.Path:
  """Writes imported weights as a run directory, complete or not at all.

  For converters of other frameworks' weights (``convert/torchvision_*``):
  ``variables`` (``params`` and ``batch_stats``) become checkpoint step 0,
  ``config`` says how to build and feed the model, and the manifest records
  ``source`` (format, model) with the file's path, size and SHA-256 as
  ``converted_from``. ``config.init_from``
  and ``ferjax predict`` then read it like a trained run. Never overwrites.
  """
  out = pathlib.Path(out)
  _refuse_existing(out, "converting")
  session = manifest_lib.session_record(argv, 0)
  session.update(end_time=session["start_time"], end_step=0)
  manifest = {
      "seed": config.seed,
      "dataset": {
          "name": config.input.dataset, "version": None,
          "builder_config": None, "class_names": list(class_names),
          "image_shape": list(image_shape), "split_sizes": {},
          "data_dir": None},
      "converted_from": {
          **source, "path": str(source_file.absolute()),
          "sha256": checkpoint_lib.sha256(source_file),
          "bytes": source_file.stat().st_size},
      "sessions": [session]}
  with atomic.directory(out) as tmp:
    run = RunDir(tmp)
    run.write_config(config)
    run._write_manifest(manifest)  # pylint: disable=protected-access
    ckpt = run.checkpoints(config, read_only=False)
    try:
      ckpt.save(0, variables)
      ckpt.wait()
    finally:
      ckpt.close()
  return out


def _refuse_existing(out: pathlib.Path, what: str) -> None:
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    raise FileExistsError(
        f"{out}: already exists and is not an empty directory; {what} never "
        "overwrites, choose a new OUT")


def export_variables(src: str | os.PathLike, out: str | os.PathLike, *,
                     checkpoint: str = "best", argv: list[str]
                     ) -> pathlib.Path:
  """A run reduced to what inference needs, complete or not at all.

  ``out`` gets the run's config, manifest and metrics, and one checkpoint
  (``checkpoint``: best, latest or a step) holding only the model variables,
  at its own step and with its evaluation scalars, without optimizer state:
  a model small enough to ship, which ``ferjax predict``, ``eval`` and
  ``init_from`` read like the run itself. The manifest records the export;
  the data paths of the training machine are dropped. A step without
  recorded checksums is exported with a warning and stays unverified in
  ``out`` (``exported_from.verified``): fresh checksums would vouch for
  values nobody checked.
  """
  run, out = RunDir(src), pathlib.Path(out)
  if run.contains(out):
    raise ValueError(f"{out}: inside the run it exports ({run.path}), which "
                     "would then hold a run in a run; choose an OUT outside "
                     "it")
  _refuse_existing(out, "exporting")
  config = run.read_config()
  with run.checkpoints(config) as ckpt:
    step = run.resolve_step(ckpt, checkpoint)
    verified = ckpt.is_verified(step)
    variables = ckpt.restore_variables(step)
    scalars = {k: v for k, v in ckpt.metrics(step).items()
               if isinstance(v, (int, float))}
  # Paths of the machine it was trained on mean nothing where it is used.
  config.input.data_dir = config.input.manual_dir = None
  manifest = run.read_manifest()
  manifest["exported_from"] = {
      "path": str(run.path.absolute()), "checkpoint": checkpoint,
      "step": step, "verified": verified, "command": list(argv),
      "time": manifest_lib.now()}
  if not verified:
    log.warning("%s: exporting step %d, which is unverified; the export "
                "records no checksums for it either", out, step)
  with atomic.directory(out) as tmp:
    exported = RunDir(tmp)
    exported.write_config(config)
    exported._write_manifest(manifest)  # pylint: disable=protected-access
    metrics = run.path / _METRICS
    if metrics.exists():
      (exported.path / _METRICS).write_bytes(files.read_bytes(
          metrics, files.MAX_METRICS_BYTES))
    if (record := run.read_calibration(step)) is not None:
      exported.write_calibration(record)  # The step's own temperature.
    # One file per array: an export is made to be shipped, in a package or
    # a repository, where OCDBT's single data file grows with the model.
    saver = exported.checkpoints(config, read_only=False, use_ocdbt=False)
    try:
      saver.save(step, variables, scalars, unverified=not verified)
      saver.wait()
    finally:
      saver.close()
  return out


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The metric events of the run at ``path`` (for notebooks and scripts)."""
  return RunDir(path).events()
