"""Several processes, one global mesh: ``jax.distributed`` set up from flags.

ferjax has no launcher of its own. Each process runs the same ``ferjax
train`` command; this module joins them into one JAX cluster before any
backend starts, from explicit flags, from the environment, or (``--distributed``
alone) from JAX's own cluster detection on SLURM, Open MPI and Cloud TPU.
A dead process makes the coordination service abort the others once its
heartbeats stop for ``heartbeat_timeout`` seconds, so a crash never hangs a
job; relaunching the same command resumes from the last checkpoint.
"""

import argparse
import os

import jax

# The environment equivalents of the flags. JAX reads the coordinator
# address itself; the other two are read here.
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


def add_flags(parser: argparse.ArgumentParser) -> None:
  """The launch flags of every multi-process command."""
  group = parser.add_argument_group(
      "several processes (jax.distributed)",
      "Give all three, set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
      "JAX_PROCESS_ID, or pass --distributed alone on SLURM or Cloud TPU. "
      "Without any of them ferjax runs as a single process.")
  group.add_argument("--distributed", action="store_true",
                     help="join a jax.distributed cluster; unset values come "
                     "from the environment or JAX's cluster detection")
  group.add_argument("--coordinator", metavar="HOST:PORT",
                     help="address of process 0's coordination service")
  group.add_argument("--num-processes", type=int, metavar="N",
                     help="how many processes the job has")
  group.add_argument("--process-id", type=int, metavar="I",
                     help="this process's index, 0 to N-1 (0 writes the "
                     "run directory)")
  group.add_argument("--heartbeat-timeout", type=int, default=60,
                     metavar="SECONDS",
                     help="abort when another process is silent this long "
                     "(default %(default)s)")
  group.add_argument("--init-timeout", type=int, default=300,
                     metavar="SECONDS",
                     help="give up when the processes have not all joined "
                     "after this long (default %(default)s)")


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name}: expected an integer, "
                     f"got {value!r}") from None


def initialize(args: argparse.Namespace) -> bool:
  """Joins the cluster the flags describe; returns False for one process.

  Must run before JAX initialises its backends (before ``jax.devices()``).
  """
  coordinator = args.coordinator or os.environ.get(ENV_COORDINATOR)
  num_processes = (args.num_processes if args.num_processes is not None
                   else _env_int(ENV_NUM_PROCESSES))
  process_id = (args.process_id if args.process_id is not None
                else _env_int(ENV_PROCESS_ID))
  explicit = (coordinator, num_processes, process_id)
  if not args.distributed and all(v is None for v in explicit):
    return False
  if not args.distributed and None in explicit:
    missing = [flag for flag, v in zip(
        ("--coordinator", "--num-processes", "--process-id"), explicit)
               if v is None]
    raise ValueError(
        f"{', '.join(missing)}: needed with the other launch flags (or their "
        f"environment variables {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, "
        f"{ENV_PROCESS_ID}); pass --distributed to let JAX detect them on "
        "SLURM or Cloud TPU")
  if num_processes is not None and num_processes < 1:
    raise ValueError(f"--num-processes: expected >= 1, got {num_processes}")
  if (process_id is not None and num_processes is not None and
      not 0 <= process_id < num_processes):
    raise ValueError(f"--process-id: expected 0 <= id < {num_processes}, "
                     f"got {process_id}")
  jax.distributed.initialize(
      coordinator_address=coordinator, num_processes=num_processes,
      process_id=process_id,
      heartbeat_timeout_seconds=args.heartbeat_timeout,
      initialization_timeout=args.init_timeout)
  return True
