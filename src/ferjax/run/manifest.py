"""What a run's manifest records: a session per process that trained it.

The run directory (``ferjax.run.run_dir``) writes the manifest at start and
completes it at the end; each resumption of the run appends a session, so
the record shows every machine and version the run touched -- what a
reproducibility study needs to rebuild a number.
"""

import datetime
import importlib.metadata
import os
import pathlib
import platform
import subprocess
import sys
from typing import Any

import jax

_PACKAGES = ("ferjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
             "tensorflow-datasets", "array-record", "numpy", "ml-collections")


def now() -> str:
  """UTC time to the second, as every ferjax record writes it."""
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")


def package_versions() -> dict[str, str | None]:
  versions = {}
  for name in _PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def git_commit() -> dict[str, Any] | None:
  """The commit of the ferjax source tree and whether it had local edits."""
  source = pathlib.Path(__file__).resolve().parent
  try:
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
        text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(source), "status", "--porcelain", "--", "."],
        capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return {"commit": commit, "dirty": bool(dirty)}


def session_record(argv: list[str], start_step: int) -> dict[str, Any]:
  """Where and how this process (re)started the run."""
  devices = jax.devices()
  return {
      "start_time": now(),
      "end_time": None,
      "start_step": start_step,
      "command": argv,
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "versions": package_versions(),
      "git": git_commit(),
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(),
      "process_count": jax.process_count(),
      # Device counts and kernel choices set outside the config.
      "xla_flags": os.environ.get("XLA_FLAGS"),
  }
