"""Sweeps: many ``ferjax train`` runs of one experiment, declared beside it.

An experiment file may define ``get_sweep(arg)`` next to ``get_config(arg)``,
returning its trials as override dicts, built with ``axis``, ``product`` and
``zip_`` or written out as a plain list::

  def get_sweep(arg=None):
    return sweep.product(sweep.axis("seed", [0, 1]),
                         sweep.axis("optimizer.learning_rate", [0.05, 0.1]))

A trial whose recipe differs in more than a few fields (another model
family's whole config) is a ``TrialSpec`` with its own experiment argument
``arg``, which ``get_config`` dispatches on, and a readable ``name``::

  def get_sweep(arg=None):
    return [sweep.TrialSpec({"seed": s}, arg=f"family={f}", name=f"{f}-seed{s}")
            for f in ("lenet5", "googlenet") for s in (0, 1)]

``ferjax sweep`` checks every trial before any starts, then runs each as its
own ``ferjax train`` process in ``DIR/<its name>`` (by default its
overrides), N at a time. The run directories are the sweep's state:
relaunching the same command after a crash or ``kill -9`` skips finished
trials and resumes the others from their checkpoints. Each trial's run
directory is locked (``run_dir.RunDir.lock``) from the moment the sweep takes
it until its ``ferjax train`` process ends, so a ``ferjax train`` into a
trial the sweep owns is refused.
"""

import dataclasses
import hashlib
import inspect
import itertools
import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ferjax import atomic
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax import filelock
from ferjax.run.run_dir import LOCK_FD_ENV, RunDir, RunDirError, read_json
from ferjax.run.manifest import now

_log = logging.getLogger(__name__)

Overrides = dict[str, Any]

SWEEP_FILE = "sweep.json"
STATUS_FILE = "trial.json"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._,=+-]")
_MAX_NAME = 100
_TAIL_LINES = 30
# What a failed trial's tail is read from: 30 lines of a traceback fit, and a
# trial that printed gigabytes before failing costs no more than this.
_TAIL_BYTES = 64 << 10


class SweepError(Exception):
  """A sweep that cannot run: another process runs it, or SLURM failed."""


def axis(field: str, values: Iterable[Any]) -> list[Overrides]:
  """One field taking each of ``values`` in turn."""
  values = list(values)
  if not values:
    raise ValueError(f"axis({field!r}): expected at least one value")
  return [{field: value} for value in values]


def product(*axes: Sequence[Overrides]) -> list[Overrides]:
  """Every combination of the axes' entries; the last axis varies fastest."""
  return [_merge(combo) for combo in itertools.product(*axes)]


def zip_(*axes: Sequence[Overrides]) -> list[Overrides]:
  """The axes side by side: trial i combines the i-th entry of each."""
  lengths = [len(a) for a in axes]
  if len(set(lengths)) > 1:
    raise ValueError(f"zip_: expected axes of equal length, got {lengths}")
  return [_merge(combo) for combo in zip(*axes)]


def _merge(parts: Iterable[Overrides]) -> Overrides:
  merged = {}
  for part in parts:
    both = sorted(merged.keys() & part.keys())
    if both:
      raise ValueError(f"field(s) {', '.join(both)} set by more than one axis")
    merged.update(part)
  return merged


def format_value(value: Any) -> str:
  """An override value as it is typed after ``--config.FIELD=``.

  Strings pass verbatim, exactly as on the command line; anything else as its
  Python literal (numpy scalars and arrays as plain numbers and lists).
  """
  if hasattr(value, "tolist"):
    value = value.tolist()
  return value if isinstance(value, str) else repr(value)


def trial_name(overrides: Mapping[str, Any]) -> str:
  """The run directory name: the overrides, readable and filesystem-safe.

  ``seed=0,optimizer.learning_rate=0.05``; a name that had to be shortened or
  had characters replaced gets a hash of the full overrides, so distinct
  trials never share a directory.
  """
  name = ",".join(f"{k}={format_value(v)}" for k, v in overrides.items())
  return safe_name(name or "default")


def safe_name(text: str) -> str:
  """``text`` as a file name; with a hash of it if it had to be changed."""
  safe = _SAFE_NAME.sub("_", text)
  if safe != text or len(safe) > _MAX_NAME:
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    safe = f"{safe[:_MAX_NAME - 9]}-{digest}"
  return safe


@dataclasses.dataclass(frozen=True)
class TrialSpec:
  """A trial of ``get_sweep`` that needs more than overrides.

  ``arg`` replaces the experiment argument (the part after ':') for this
  trial, so that ``get_config(arg)`` can build another recipe; ``name`` is
  its run directory's name (default: made from ``arg`` and the overrides).
  """

  overrides: Overrides = dataclasses.field(default_factory=dict)
  arg: str | None = None
  name: str | None = None


@dataclasses.dataclass
class Trial:
  """One run of a sweep: its overrides, its run directory and, when it has
  one of its own, its experiment argument."""

  name: str
  overrides: Overrides
  workdir: pathlib.Path
  arg: str | None = None

  @property
  def args(self) -> list[str]:
    """The overrides as ``FIELD=VALUE`` (the part after ``--config.``)."""
    return [f"{k}={format_value(v)}" for k, v in self.overrides.items()]

  def read_status(self, note: Callable[[str], None] = _log.warning
                  ) -> dict[str, Any]:
    """The trial's record; a damaged one (named to ``note``) starts
    afresh."""
    path = self.workdir / STATUS_FILE
    if not path.exists():
      return {}
    try:
      status = read_json(path)
    except RunDirError as e:
      note(f"warning: {e}; rewriting it")
      return {}
    return status if isinstance(status, dict) else {}

  def write_status(self, status: dict[str, Any]) -> None:
    atomic.write_text(self.workdir / STATUS_FILE,
                      json.dumps(status, indent=2) + "\n")


def experiment_spec(spec: str, trial: Trial) -> str:
  """What ``trial`` trains: the sweep's ``spec``, with the trial's own
  argument in place of the sweep's when it has one."""
  if trial.arg is None:
    return spec
  return f"{spec.partition(':')[0]}:{trial.arg}"


def trial_config(spec: str, common: Sequence[str],
                 trial: Trial) -> Any:
  """The config ``trial`` trains: its experiment, ``common``, its overrides."""
  base = config_lib.load_config(experiment_spec(spec, trial))
  return config_lib.apply_overrides(
      config_lib.apply_overrides(base, common), trial.args)


def _as_trial_spec(entry: Any) -> TrialSpec | None:
  """``entry`` of ``get_sweep``'s list as a TrialSpec; None if malformed."""
  if isinstance(entry, Mapping):
    entry = TrialSpec(dict(entry))
  if not (isinstance(entry, TrialSpec) and isinstance(entry.overrides, Mapping)
          and all(isinstance(k, str) for k in entry.overrides)
          and all(v is None or (isinstance(v, str) and v)
                  for v in (entry.arg, entry.name))):
    return None
  return dataclasses.replace(entry, overrides=dict(entry.overrides))


def load_sweep(spec: str) -> list[TrialSpec]:
  """Calls ``get_sweep(arg)`` of ``path/to/experiment.py[:arg]``."""
  module, arg = config_lib.load_experiment(spec)
  path_str = spec.partition(":")[0]
  get_sweep = getattr(module, "get_sweep", None)
  if get_sweep is None:
    raise config_lib.ConfigError(
        f"{path_str} defines no get_sweep(); a sweep needs one returning a "
        "list of override dicts")
  try:
    if inspect.signature(get_sweep).parameters:
      trials = get_sweep(arg)
    else:
      trials = get_sweep()
  except ValueError as e:
    raise config_lib.ConfigError(f"{path_str}: get_sweep(): {e}") from None
  specs = ([_as_trial_spec(t) for t in trials]
           if isinstance(trials, (list, tuple)) else [])
  if not specs or None in specs:
    raise config_lib.ConfigError(
        f"{path_str}: get_sweep() must return a non-empty list of "
        f"{{'FIELD': value}} dicts or sweep.TrialSpec, got {trials!r:.200}")
  return specs


def _default_name(spec: TrialSpec) -> str:
  """``arg,overrides`` (or either alone) as a run directory name."""
  if spec.arg is None:
    return trial_name(spec.overrides)
  return safe_name(",".join([spec.arg, *(
      f"{k}={format_value(v)}" for k, v in spec.overrides.items())]))


def plan(spec: str, common: Sequence[str],
         workdir: str | os.PathLike) -> list[Trial]:
  """Expands and validates every trial before any of them runs.

  ``common`` overrides (``FIELD=VALUE``) apply to every trial. Raises
  ConfigError for an unknown field or bad value in any trial, a field both
  swept and set in ``common``, duplicate trials, or a run directory already
  holding a different config.
  """
  workdir = pathlib.Path(workdir)
  common_fields = {o.partition("=")[0] for o in common}
  trials: list[Trial] = []
  for entry in load_sweep(spec):
    overrides = entry.overrides
    name = safe_name(entry.name) if entry.name else _default_name(entry)
    trial = Trial(name, overrides, workdir / name, entry.arg)
    if any(t.name == trial.name for t in trials):
      raise config_lib.ConfigError(
          f"{spec}: get_sweep() lists the trial {trial.name} twice")
    both = sorted(common_fields & overrides.keys())
    if both:
      raise config_lib.ConfigError(
          f"--config.{both[0]} is set on the command line but swept by "
          f"{spec}'s get_sweep(); drop one of them")
    try:
      config = trial_config(spec, common, trial)
      config_checks.validate(config)
    except config_lib.ConfigError as e:
      raise config_lib.ConfigError(f"trial {trial.name}: {e}") from None
    _check_existing(trial, config)
    trials.append(trial)
  return trials


def _check_existing(trial: Trial, config: Any) -> None:
  """Refuses a run directory holding another experiment, finished or not."""
  try:
    RunDir(trial.workdir).resumable_config(config)
  except RunDirError as e:
    raise config_lib.ConfigError(
        f"{e} (the experiment or the --config overrides changed since it "
        "ran)") from None


def train_command(spec: str, common: Sequence[str],
                  trial: Trial) -> list[str]:
  """The ``ferjax train`` process of one trial."""
  return [sys.executable, "-m", "ferjax.cli", "train",
          "--config", experiment_spec(spec, trial),
          "--workdir", str(trial.workdir),
          *(f"--config.{o}" for o in [*common, *trial.args])]


def headline(run_dir: str | os.PathLike) -> str:
  """A finished trial's selecting metric at its best checkpoint, for a line."""
  try:
    steps, by, best = RunDir(run_dir).best_checkpoint()
  except (RunDirError, OSError):
    return ""
  if by and by in best:
    return f"; best {by}={best[by]:.4f} (step {steps['best']})"
  return ""


def _tail(path: pathlib.Path, offset: int) -> str:
  """The last lines this attempt wrote to ``path`` (from ``offset`` on)."""
  with open(path, "rb") as f:
    f.seek(max(offset, os.fstat(f.fileno()).st_size - _TAIL_BYTES))
    text = f.read(_TAIL_BYTES).decode(errors="replace")
  return "\n".join(text.splitlines()[-_TAIL_LINES:])


@dataclasses.dataclass
class _Running:
  trial: Trial
  proc: subprocess.Popen
  stderr_offset: int
  started: float


class Runner:
  """Runs a planned sweep's unfinished trials, ``parallel`` at a time.

  Each trial's ``trial.json`` (status, attempts, exit code, stderr tail) and
  the sweep's ``sweep.json`` are rewritten atomically on every change. A
  trial's process holds a lock on its run directory for as long as it lives,
  even if the sweep was killed without it: a relaunch then waits for that
  process instead of starting the trial twice. Progress goes to ``say`` (a
  line per trial started and ended), notes and warnings to ``note``: the
  command prints them, the log has them otherwise.
  """

  def __init__(self, spec: str, common: Sequence[str],
               workdir: str | os.PathLike, trials: list[Trial], *,
               parallel: int = 1,
               say: Callable[[str], None] = _log.info,
               note: Callable[[str], None] = _log.warning):
    if parallel < 1:
      raise ValueError(f"--parallel: expected a positive integer, got "
                       f"{parallel}")
    self.spec = spec
    self.common = list(common)
    self.workdir = pathlib.Path(workdir)
    self.trials = trials
    self.parallel = parallel
    self.say, self.note = say, note
    self.status = {t.name: t.read_status(note) for t in trials}
    self._locks: dict[str, int] = {}

  def run(self) -> dict[str, str]:
    """Runs every unfinished trial; returns each trial's final status."""
    self.workdir.mkdir(parents=True, exist_ok=True)
    sweep_lock = filelock.try_lock(self.workdir / ".sweep.lock")
    if sweep_lock is None:
      raise SweepError(f"{self.workdir} is being swept by another process; "
                       "wait for it or stop it, then relaunch")
    try:
      return self._run()
    finally:
      for fd in self._locks.values():
        os.close(fd)
      self._locks.clear()
      os.close(sweep_lock)

  def _unfinished(self) -> list[Trial]:
    """The trials left to run; finished ones recorded, new ones pending."""
    unfinished = []
    for trial in self.trials:
      record = self.status[trial.name]
      if RunDir(trial.workdir).is_finished():
        if record.get("status") != "finished":
          self._update(trial, status="finished")
        continue
      trial.workdir.mkdir(parents=True, exist_ok=True)
      if not record:
        self._update(trial, status="pending", attempts=0)
      unfinished.append(trial)
    return unfinished

  def _run(self) -> dict[str, str]:
    todo, orphaned = [], []
    for trial in self._unfinished():
      if self._lock(trial):
        todo.append(trial)
      else:
        orphaned.append(trial)
        self.say(f"{trial.name}: in use by "
                 f"{RunDir(trial.workdir).holder() or 'another process'}; "
                 "waiting for it")
    self._write_sweep()
    done = len(self.trials) - len(todo) - len(orphaned)
    self.say(f"sweep {self.workdir}: {len(self.trials)} trials, {done} "
             f"already finished, {len(todo) + len(orphaned)} to run, "
             f"{self.parallel} at a time")
    running: list[_Running] = []
    try:
      while todo or running or orphaned:
        for trial in [t for t in orphaned if self._lock(t)]:
          orphaned.remove(trial)
          if RunDir(trial.workdir).is_finished():
            os.close(self._locks.pop(trial.name))
            done += 1
            self._update(trial, status="finished", end_time=now())
            self._write_sweep()
            self.say(f"[{done}/{len(self.trials)}] {trial.name}: finished by "
                     "an earlier sweep's process")
          else:
            todo.append(trial)
        while todo and len(running) + len(orphaned) < self.parallel:
          running.append(self._start(todo.pop(0)))
        time.sleep(0.2)
        for r in [r for r in running if r.proc.poll() is not None]:
          running.remove(r)
          done += 1
          self._finish(r, f"[{done}/{len(self.trials)}]")
    except KeyboardInterrupt:
      for r in running:
        r.proc.terminate()
      for r in running:
        try:
          r.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
          r.proc.kill()
          r.proc.wait()
        self._update(r.trial, status="interrupted",
                     returncode=r.proc.returncode, end_time=now())
      self._write_sweep()
      raise
    self._write_sweep()
    return {name: s["status"] for name, s in self.status.items()}

  def _lock(self, trial: Trial) -> bool:
    """Takes the trial's lock unless a live process still holds it."""
    fd = RunDir(trial.workdir).try_lock()
    if fd is not None:
      self._locks[trial.name] = fd
    return fd is not None

  def _start(self, trial: Trial) -> _Running:
    command = train_command(self.spec, self.common, trial)
    stderr_path = trial.workdir / "stderr.log"
    offset = stderr_path.stat().st_size if stderr_path.exists() else 0
    self._update(trial, status="running", command=command,
                 overrides={k: format_value(v)
                            for k, v in trial.overrides.items()},
                 attempts=self.status[trial.name].get("attempts", 0) + 1,
                 returncode=None, stderr_tail=None, start_time=now(),
                 end_time=None)
    self._write_sweep()
    self.say(f"started {trial.name} (log: {stderr_path})")
    with open(trial.workdir / "stdout.log", "ab") as out, open(
        stderr_path, "ab") as err:
      proc = subprocess.Popen(
          command, stdout=out, stderr=err,
          pass_fds=(self._locks[trial.name],),
          env={**os.environ, "PYTHONUNBUFFERED": "1",
               LOCK_FD_ENV: str(self._locks[trial.name])})
    return _Running(trial, proc, offset, time.monotonic())

  def _finish(self, r: _Running, counter: str) -> None:
    trial, code = r.trial, r.proc.returncode
    os.close(self._locks.pop(trial.name))
    ok = code == 0 and RunDir(trial.workdir).is_finished()
    tail = None if ok else _tail(trial.workdir / "stderr.log", r.stderr_offset)
    self._update(trial, status="finished" if ok else "failed",
                 returncode=code, stderr_tail=tail, end_time=now())
    self._write_sweep()
    seconds = time.monotonic() - r.started
    if ok:
      self.say(f"{counter} {trial.name}: finished in {seconds:.0f} s"
               f"{headline(trial.workdir)}")
    else:
      last = (tail or "").strip().splitlines()[-1:] or ["(no stderr)"]
      self.say(f"{counter} {trial.name}: FAILED (exit {code}) after "
               f"{seconds:.0f} s: {last[0]}")

  def _update(self, trial: Trial, **fields: Any) -> None:
    record = self.status[trial.name]
    record.update(name=trial.name, **fields)
    trial.write_status(record)

  def _write_sweep(self) -> None:
    statuses = [self.status[t.name].get("status", "pending")
                for t in self.trials]
    summary = {
        "config": self.spec,
        "overrides": self.common,
        "parallel": self.parallel,
        "updated": now(),
        "counts": {s: statuses.count(s) for s in sorted(set(statuses))},
        "trials": [{
            "name": t.name,
            **({"arg": t.arg} if t.arg is not None else {}),
            "overrides": {k: format_value(v) for k, v in t.overrides.items()},
            "status": status,
            "attempts": self.status[t.name].get("attempts", 0),
            "returncode": self.status[t.name].get("returncode"),
        } for t, status in zip(self.trials, statuses)],
    }
    atomic.write_text(self.workdir / SWEEP_FILE,
                      json.dumps(summary, indent=2) + "\n")
