"""Sweeps on SLURM: each trial a task of a job array, submitted by submitit.

``ferjax sweep --launcher slurm`` submits the trials that have not finished
as one job array (``--parallel N`` becomes its ``%N`` throttle) and waits for
them by polling ``squeue``. The jobs do not depend on the sweep process: it
may be stopped or die at any time, or not wait at all (``--no-wait``). The
run directories stay the sweep's state, as with local processes, and each
``trial.json`` records the trial's SLURM job id and log files. A relaunch
skips finished trials, leaves the ones whose job is still queued or running
to that job, and resubmits the others, which resume from their last
checkpoint. A job that reaches its time limit or is preempted gets
submitit's USR2 signal and is requeued; it resumes the same way, exactly.

Everything a job reads must be on a filesystem every node sees: the sweep
directory (run directories and ``slurm/``, submitit's pickles and logs), the
experiment file, the data and the virtual environment.
"""

import contextlib
import dataclasses
import os
import pathlib
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep
from ferjax.run.run_dir import RunDir, read_json
from ferjax.run.manifest import now

SUBMITIT_DIR = "slurm"
# SLURM job states in which a job may still run its trial.
PENDING_STATES = frozenset({
    "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
    "RESIZING", "SUSPENDED", "STOPPED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING",
                            "STAGE_OUT"})
LIVE_STATES = PENDING_STATES | RUNNING_STATES
POLL_SECONDS = 2.0
_SQUEUE_RETRIES = 15


class SlurmError(sweep.SweepError):
  """SLURM or submitit is missing or failed (sbatch, squeue)."""


@dataclasses.dataclass(frozen=True)
class Resources:
  """What one trial's job asks SLURM for (the config's ``slurm`` section)."""

  partition: str | None = None
  time_minutes: int = 60
  nodes: int = 1
  tasks_per_node: int = 1
  cpus_per_task: int = 1
  gpus_per_node: int = 0
  mem_gb: float | None = None
  sbatch: tuple[str, ...] = ()

  @property
  def tasks(self) -> int:
    return self.nodes * self.tasks_per_node

  def sbatch_parameters(self) -> dict[str, Any]:
    """submitit ``SlurmExecutor`` parameters (sbatch's option names)."""
    params: dict[str, Any] = dict(
        time=self.time_minutes, nodes=self.nodes,
        ntasks_per_node=self.tasks_per_node,
        cpus_per_task=self.cpus_per_task,
        # USR2 this long before the time limit: submitit requeues the job
        # before SLURM kills it. Not later than a quarter of a short limit.
        signal_delay_s=min(90, self.time_minutes * 15))
    if self.partition:
      params["partition"] = self.partition
    if self.gpus_per_node:
      params["gpus_per_node"] = self.gpus_per_node
    if self.mem_gb is not None:
      params["mem"] = (f"{int(self.mem_gb)}GB" if self.mem_gb == int(
          self.mem_gb) else f"{int(self.mem_gb * 1024)}MB")
    extra = {}
    for option in self.sbatch:
      key, sep, value = option[2:].partition("=")
      extra[key] = value if sep else True
    if extra:
      params["additional_parameters"] = extra
    return params


def resources(config: ml_collections.ConfigDict) -> Resources:
  """The validated ``config.slurm``; ConfigError names a bad field.

  A field the config lacks takes its default, so that experiments written
  before this section existed still run.
  """
  slurm = config.slurm.to_dict() if "slurm" in config else {}
  values = {f.name: slurm.get(f.name, f.default)
            for f in dataclasses.fields(Resources)}
  if slurm.get("cpus_per_task") is None:
    values["cpus_per_task"] = config.parallel.get("cpu_devices") or 1
  for field in ("time_minutes", "nodes", "tasks_per_node", "cpus_per_task"):
    _require(_is_int(values[field]) and values[field] > 0, field,
             "a positive integer", values[field])
  _require(_is_int(values["gpus_per_node"]) and values["gpus_per_node"] >= 0,
           "gpus_per_node", "an integer >= 0", values["gpus_per_node"])
  partition = values["partition"]
  _require(partition is None or (isinstance(partition, str) and partition),
           "partition", "None (the default partition) or a name", partition)
  mem = values["mem_gb"]
  _require(mem is None or (isinstance(mem, (int, float)) and
                           not isinstance(mem, bool) and mem > 0),
           "mem_gb", "None or a positive number of GB", mem)
  extra = values["sbatch"]
  _require(isinstance(extra, (tuple, list)) and all(
      isinstance(o, str) and o.startswith("--") and len(o) > 2
      for o in extra), "sbatch",
           "a tuple of sbatch options like ('--account=lab', '--exclusive')",
           extra)
  values["sbatch"] = tuple(extra)
  return Resources(**values)


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, field: str, expected: str, value: Any) -> None:
  if not ok:
    raise config_lib.ConfigError(
        f"config.slurm.{field}: expected {expected}, got {value!r}")


def job_states() -> dict[str, str]:
  """The state of each of this user's jobs that SLURM still lists.

  Keys are job ids as sbatch and submitit print them (``123``, ``123_4``
  for array task 4); finished jobs stay listed for ``MinJobAge`` seconds.
  """
  try:
    out = subprocess.run(
        ["squeue", "--me", "--noheader", "--array", "--states=all",
         "--format=%i|%T"], capture_output=True, text=True, timeout=60)
  except FileNotFoundError:
    raise SlurmError("squeue not found: the SLURM launcher needs SLURM's "
                     "client commands (sbatch, squeue) on this machine"
                     ) from None
  except (OSError, subprocess.TimeoutExpired) as e:
    raise SlurmError(f"squeue: {e}") from None
  if out.returncode:
    raise SlurmError(f"squeue failed: {out.stderr.strip()}")
  return dict(line.split("|", 1) for line in out.stdout.split() if "|" in line)


def _ignore_requeue_signal() -> None:
  signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class TrialJob:
  """One task of a trial's job: its ``ferjax train`` command, run as is.

  submitit calls ``checkpoint`` when SLURM signals a time-out or
  preemption: the job is requeued with the same command, which resumes from
  the run's last checkpoint. The trainer ignores that signal (SLURM sends it
  to every process of the step) and is stopped by the requeue itself.
  """

  def __init__(self, command: Sequence[str]):
    self.command = list(command)

  def __call__(self) -> None:
    code = subprocess.call(self.command, preexec_fn=_ignore_requeue_signal,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if code:
      raise RuntimeError(f"ferjax train exited with code {code}: "
                         f"{shlex.join(self.command)}")

  def checkpoint(self) -> Any:
    import submitit  # pylint: disable=g-import-not-at-top
    return submitit.helpers.DelayedSubmission(self)


def _absolute_spec(spec: str) -> str:
  """``path[:arg]`` with an absolute path: jobs may start in another cwd."""
  path, sep, arg = spec.partition(":")
  return f"{pathlib.Path(path).resolve()}{sep}{arg}"


class SlurmRunner(sweep.Runner):
  """Runs a planned sweep's unfinished trials as SLURM array jobs.

  ``parallel`` caps the trials running at once (the array's ``%N``); with
  ``wait=False`` ``run`` returns once the jobs are submitted.
  """

  def __init__(self, spec: str, common: Sequence[str],
               workdir: str | os.PathLike, trials: list[sweep.Trial], *,
               parallel: int = 1, wait: bool = True,
               poll_seconds: float = POLL_SECONDS,
               **messages: Callable[[str], None]):
    # messages: sweep.Runner's say and note.
    super().__init__(_absolute_spec(spec), common,
                     pathlib.Path(workdir).resolve(), trials,
                     parallel=parallel, **messages)
    self.resources = {t.name: resources(sweep.trial_config(spec, common, t))
                      for t in trials}
    self.wait = wait
    self.poll_seconds = poll_seconds

  def _run(self) -> dict[str, str]:
    states = job_states()
    todo, queued = [], []
    for trial in self._unfinished():
      job = self.status[trial.name].get("job_id")
      if job and states.get(job) in LIVE_STATES:
        queued.append(trial)
        self.say(f"{trial.name}: job {job} of an earlier sweep is "
                 f"{states[job]}; waiting for it")
      else:
        todo.append(trial)
    self._write_sweep()
    done = len(self.trials) - len(todo) - len(queued)
    self.say(f"sweep {self.workdir}: {len(self.trials)} trials, {done} "
             f"already finished, {len(todo) + len(queued)} to run on SLURM, "
             f"{self.parallel} at a time")
    self._submit(todo)
    if self.wait:
      self._watch(todo + queued, done)
    self._write_sweep()
    return {name: s["status"] for name, s in self.status.items()}

  def _submit(self, trials: list[sweep.Trial]) -> None:
    """One job array per distinct resources; job ids into trial.json.

    SIGINT and SIGTERM wait until every submitted job is recorded, so that
    a relaunch never submits a trial whose job it does not know of.
    """
    try:
      import submitit  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise SlurmError(
          "the SLURM launcher needs submitit: pip install -c "
          "requirements.lock -e '.[slurm]'") from None
    groups: dict[Resources, list[sweep.Trial]] = {}
    for trial in trials:
      groups.setdefault(self.resources[trial.name], []).append(trial)
    for res, group in groups.items():
      try:
        executor = submitit.SlurmExecutor(folder=self.workdir / SUBMITIT_DIR)
      except RuntimeError as e:  # No srun on this machine.
        raise SlurmError(str(e)) from None
      executor.update_parameters(
          job_name=f"ferjax-sweep-{self.workdir.name}",
          array_parallelism=self.parallel, **res.sbatch_parameters())
      commands = [self._command(trial, res) for trial in group]
      with _signals_deferred():
        try:
          jobs = executor.submit_array([TrialJob(c) for c in commands])
        except (submitit.core.utils.FailedJobError,
                submitit.core.utils.FailedSubmissionError, OSError) as e:
          raise SlurmError(f"sbatch failed: {e}") from None
        for trial, job, command in zip(group, jobs, commands):
          record = self.status[trial.name]
          self._update(
              trial, status="pending", launcher="slurm", command=command,
              overrides={k: sweep.format_value(v)
                         for k, v in trial.overrides.items()},
              attempts=record.get("attempts", 0) + 1, job_id=job.job_id,
              jobs=[*record.get("jobs", []), job.job_id],
              stdout_log=str(job.paths.stdout),
              stderr_log=str(job.paths.stderr), slurm_state="PENDING",
              returncode=None, stderr_tail=None, start_time=now(),
              end_time=None)
        self._write_sweep()
      self.say(f"submitted job array {jobs[0].job_id.split('_')[0]}: "
               f"{len(group)} trial(s), {res.tasks} task(s) x "
               f"{res.cpus_per_task} CPU(s) each")

  def _command(self, trial: sweep.Trial, res: Resources) -> list[str]:
    command = sweep.train_command(self.spec, self.common, trial)
    command[command.index("--workdir") + 1] = str(trial.workdir.resolve())
    return command + ["--distributed"] if res.tasks > 1 else command

  def _watch(self, trials: list[sweep.Trial], done: int) -> None:
    """Polls squeue until every trial's job has left the running states."""
    watching = list(trials)
    failures = 0
    try:
      while watching:
        try:
          states = job_states()
          failures = 0
        except SlurmError as e:
          failures += 1
          if failures > _SQUEUE_RETRIES:
            raise
          self.note(f"{e}; retrying")
          time.sleep(self.poll_seconds)
          continue
        for trial in list(watching):
          record = self.status[trial.name]
          state = states.get(record["job_id"])
          if state in LIVE_STATES:
            status = "running" if state in RUNNING_STATES else "pending"
            if (status, state) != (record["status"], record["slurm_state"]):
              started = status == "running" and record["status"] != "running"
              self._update(trial, status=status, slurm_state=state)
              self._write_sweep()
              if started:
                self.say(f"{trial.name}: running (job {record['job_id']})")
            continue
          watching.remove(trial)
          done += 1
          self._ended(trial, state, f"[{done}/{len(self.trials)}]")
        if watching:
          time.sleep(self.poll_seconds)
    except KeyboardInterrupt:
      self.note("the jobs go on in SLURM; `ferjax sweep --status "
                f"--workdir {self.workdir}` shows them")
      raise

  def _ended(self, trial: sweep.Trial, state: str | None,
             counter: str) -> None:
    record = self.status[trial.name]
    ok = RunDir(trial.workdir).is_finished()
    state = state or "ENDED"  # Gone from squeue (after MinJobAge).
    log = pathlib.Path(record["stderr_log"])
    log_tail = sweep._tail(log, 0) if not ok and log.exists() else None
    self._update(trial, status="finished" if ok else "failed",
                 slurm_state=state, stderr_tail=log_tail,
                 end_time=now())
    self._write_sweep()
    if ok:
      self.say(f"{counter} {trial.name}: finished (job {record['job_id']})"
               f"{sweep.headline(trial.workdir)}")
    else:
      self.say(f"{counter} {trial.name}: FAILED (job {record['job_id']}, "
               f"{state}); log: {record['stderr_log']}")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
  """Blocks SIGINT and SIGTERM inside the block; they arrive after it."""
  mask = signal.pthread_sigmask(signal.SIG_BLOCK,
                                {signal.SIGINT, signal.SIGTERM})
  try:
    yield
  finally:
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def trial_lines(workdir: str | os.PathLike) -> Iterator[str]:
  """One line per trial of a sweep directory, for ``ferjax sweep --status``.

  Reads ``sweep.json``, each ``trial.json`` and (for SLURM trials) squeue;
  takes no lock and changes nothing, so it answers while a sweep runs.
  """
  workdir = pathlib.Path(workdir)
  summary_path = workdir / sweep.SWEEP_FILE
  if not summary_path.exists():
    raise FileNotFoundError(f"{workdir} holds no {sweep.SWEEP_FILE}: not a "
                            "sweep directory, or its sweep never started")
  names = [t["name"] for t in read_json(summary_path)["trials"]]
  records = {n: sweep.Trial(n, {}, workdir / n).read_status() for n in names}
  states: dict[str, str] = {}
  if any(r.get("job_id") for r in records.values()):
    try:
      states = job_states()
    except SlurmError as e:
      yield f"(no live SLURM states: {e})"
  counts: dict[str, int] = {}
  lines = []
  for name in names:
    record = records[name]
    job = record.get("job_id")
    status = record.get("status", "new")
    detail = ""
    state = states.get(job) if job else None
    if RunDir(workdir / name).is_finished():
      status = "finished"
    elif state in LIVE_STATES:
      status = "running" if state in RUNNING_STATES else "pending"
    elif job and status in ("pending", "running"):
      status = "stopped"  # Its job ended without a sweep watching it.
    if job:
      detail = f"job {job} ({state or record.get('slurm_state')})"
      if status in ("failed", "stopped"):
        detail += f", log {record.get('stderr_log')}"
    counts[status] = counts.get(status, 0) + 1
    attempts = record.get("attempts", 0)
    lines.append(f"{status:<9} {name}  attempts={attempts} {detail}".rstrip())
  yield from lines
  yield ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
