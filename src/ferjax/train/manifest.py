"""The run manifest: what a reproducibility study needs to rebuild a number.

Written next to the checkpoints at start and completed at the end; each
resumption of the run appends a session, so the record shows every machine
and version the run touched.
"""

import datetime
import importlib.metadata
import json
import pathlib
import platform
import subprocess
import sys
from typing import Any

import jax

from ferjax import atomic

_PACKAGES = ("ferjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
             "tensorflow-datasets", "array-record", "numpy", "ml-collections")


def _now() -> str:
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
      "start_time": _now(),
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
  }


def start(path: pathlib.Path, *, argv: list[str], start_step: int,
          seed: int, dataset: dict[str, Any],
          init_from: dict[str, Any] | None = None) -> dict[str, Any]:
  """Creates or extends the manifest with a new session and writes it.

  ``init_from`` records where a new run's starting variables came from; a
  resumed run keeps the record of its first session.
  """
  manifest = json.loads(path.read_text()) if path.exists() else {
      "seed": seed, "dataset": dataset, "sessions": []}
  if init_from is not None:
    manifest["init_from"] = init_from
  manifest["sessions"].append(session_record(argv, start_step))
  atomic.write_text(path, json.dumps(manifest, indent=2) + "\n")
  return manifest


def finish(path: pathlib.Path, manifest: dict[str, Any], *,
           end_step: int) -> None:
  session = manifest["sessions"][-1]
  session["end_time"] = _now()
  session["end_step"] = end_step
  atomic.write_text(path, json.dumps(manifest, indent=2) + "\n")
