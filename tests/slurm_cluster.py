"""A real single-node SLURM on this machine, for the tests.

Started as root from the Debian packages ``slurm-wlm`` and ``munge``
(``.ci/run`` installs them when it can): a fresh directory with its own
munge key and socket, ``slurm.conf`` (free ports, one node with this
machine's CPUs) and state, then ``munged``, ``slurmctld`` and ``slurmd`` in
the foreground. Clients (sbatch, squeue, srun, submitit) find it through
``SLURM_CONF``. At the end its jobs are cancelled and the three daemons it
started are stopped by their PIDs; nothing else on the machine is touched.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from helpers import free_port

COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "srun",
            "scancel", "sinfo")
START_TIMEOUT = 60


def unavailable() -> str | None:
  """Why a local SLURM cannot run here, or None if it can."""
  if os.geteuid() != 0:
    return "a local SLURM needs root (its daemons run as root here)"
  missing = [c for c in COMMANDS if shutil.which(c) is None]
  if missing:
    return (f"SLURM is not installed ({', '.join(missing)} missing): "
            "apt-get install slurm-wlm munge")
  try:
    socket.gethostbyname(socket.gethostname())
  except OSError:
    return f"this host's name {socket.gethostname()!r} does not resolve"
  return None


def _conf(root: str, host: str, cpus: int) -> str:
  return "\n".join([
      "ClusterName=ferjaxtest",
      f"SlurmctldHost={host}",
      "SlurmUser=root",
      "SlurmdUser=root",
      f"SlurmctldPort={free_port()}",
      f"SlurmdPort={free_port()}",
      "AuthType=auth/munge",
      "CredType=cred/munge",
      f"AuthInfo=socket={root}/munge.socket",
      f"StateSaveLocation={root}/state",
      f"SlurmdSpoolDir={root}/spool",
      f"SlurmctldPidFile={root}/slurmctld.pid",
      f"SlurmdPidFile={root}/slurmd.pid",
      f"SlurmctldLogFile={root}/slurmctld.log",
      f"SlurmdLogFile={root}/slurmd.log",
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_CPU",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      "MpiDefault=none",
      "ReturnToService=2",
      f"NodeName={host} CPUs={cpus} State=UNKNOWN",
      "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
      ""])


def _wait(ok, what: str, procs: list[subprocess.Popen], root: str) -> None:
  deadline = time.monotonic() + START_TIMEOUT
  while not ok():
    dead = [p.args[0] for p in procs if p.poll() is not None]
    if dead or time.monotonic() > deadline:
      logs = "\n".join(
          f"--- {name}\n{open(os.path.join(root, name)).read()[-2000:]}"
          for name in sorted(os.listdir(root))
          if name.endswith((".log", ".out")))
      why = f"exited: {', '.join(dead)}" if dead else "timeout"
      raise RuntimeError(f"local SLURM: {what} failed ({why})\n{logs}")
    time.sleep(0.2)


@contextlib.contextmanager
def local_slurm() -> Iterator[dict[str, str]]:
  """Runs the cluster; yields the environment its clients need."""
  host = socket.gethostname().split(".")[0]
  cpus = os.cpu_count() or 1
  # munged wants every directory above its socket traversable by all.
  root = tempfile.mkdtemp(prefix="ferjax-slurm-")
  os.chmod(root, 0o755)
  for sub in ("state", "spool"):
    os.mkdir(os.path.join(root, sub))
  key = os.path.join(root, "munge.key")
  with open(key, "wb") as f:
    f.write(os.urandom(1024))
  os.chmod(key, 0o400)
  conf = os.path.join(root, "slurm.conf")
  with open(conf, "w") as f:
    f.write(_conf(root, host, cpus))
  env = {"SLURM_CONF": conf}
  client_env = {**os.environ, **env}
  procs: list[subprocess.Popen] = []

  def start(*command: str) -> None:
    with open(os.path.join(root, f"{command[0]}.out"), "wb") as log:
      procs.append(subprocess.Popen(command, stdout=log,
                                    stderr=subprocess.STDOUT))

  def node_idle() -> bool:
    out = subprocess.run(["sinfo", "--noheader", "--format=%T"],
                         env=client_env, capture_output=True, text=True)
    return out.stdout.strip() == "idle"

  try:
    start("munged", "--foreground", f"--socket={root}/munge.socket",
          f"--key-file={key}", f"--log-file={root}/munged.log",
          f"--pid-file={root}/munged.pid", f"--seed-file={root}/munged.seed")
    _wait(lambda: os.path.exists(f"{root}/munge.socket"), "munged", procs,
          root)
    start("slurmctld", "-D", "-c", "-f", conf)
    start("slurmd", "-D", "-f", conf, "-N", host)
    _wait(node_idle, "slurmctld/slurmd", procs, root)
    yield env
  finally:
    if len(procs) == 3 and procs[1].poll() is None:
      subprocess.run(["scancel", "--full", f"--user={os.getuid()}"],
                     env=client_env, capture_output=True)
      deadline = time.monotonic() + 60
      while time.monotonic() < deadline and subprocess.run(
          ["squeue", "--noheader"], env=client_env, capture_output=True,
          text=True).stdout.strip():
        time.sleep(0.5)
    for proc in reversed(procs):
      if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    for proc in reversed(procs):
      try:
        proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(root, ignore_errors=True)
