"""Several processes, one global mesh: ``jax.distributed`` set up from flags.

ferjax has no launcher of its own. Each process runs the same ``ferjax
train`` command (its launch flags: ``commands.train``); this module joins them into one JAX cluster before any
backend starts, from explicit flags, from the environment, or (``--distributed``
alone) from JAX's own cluster detection on SLURM, Open MPI and Cloud TPU.
A dead process makes the coordination service abort the others once its
heartbeats stop for ``heartbeat_timeout`` seconds, so a crash never hangs a
job; relaunching the same command resumes from the last checkpoint.
"""

import dataclasses
import os

import jax

# The environment equivalents of the flags. JAX reads the coordinator
# address itself; the other two are read here.
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class Launch:
  """What the launch flags say (``ferjax train --help``); None: unset."""

  distributed: bool = False
  coordinator: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  heartbeat_timeout: int = 60
  init_timeout: int = 300


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value is None or value == "":
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name}: expected an integer, "
                     f"got {value!r}") from None


def initialize(args: Launch) -> bool:
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
