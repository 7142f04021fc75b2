"""JAX's persistent compilation cache for every ferjax command that compiles.

A `ferjax predict` of one photo spends most of its time compiling the
detector's and the classifier's networks, and every trial of a sweep, every
rerun and every resumption of a run compiles the same train step, evaluators
and checks; with the cache, a later process reads the compiled programs from
disk instead. The cache lives in the user's cache directory,
``$XDG_CACHE_HOME/ferjax/jax`` (``~/.cache/ferjax/jax`` when XDG_CACHE_HOME
is unset), or where JAX's own ``JAX_COMPILATION_CACHE_DIR`` says.
``FERJAX_COMPILATION_CACHE`` overrides both: a directory to use instead, or
``off`` (also ``0``, ``false``, ``none``) to disable it. Entries are keyed by
program, JAX version and device, so a stale entry is never used, and deleting
the directory is always safe.
"""

import logging
import os
from pathlib import Path

import jax

log = logging.getLogger(__name__)

ENV = "FERJAX_COMPILATION_CACHE"
_OFF = ("0", "off", "false", "no", "none")


def default_dir() -> Path | None:
  """Where the cache goes, or None when ``FERJAX_COMPILATION_CACHE`` turns
  it off."""
  value = os.environ.get(ENV, "").strip()
  if value.lower() in _OFF:
    return None
  if value:
    return Path(value).expanduser()
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return Path(os.environ["JAX_COMPILATION_CACHE_DIR"]).expanduser()
  base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
  return Path(base) / "ferjax" / "jax"


def enable(directory: str | Path | None) -> Path | None:
  """Turns the persistent cache on in ``directory`` (None: leave it off).

  Must run before the first compilation. Every program is cached, however
  quick to compile: the small ones add up to seconds too. A directory that
  cannot be created is logged as a warning and the run goes on uncached.
  """
  if directory is None:
    return None
  directory = Path(directory)
  try:
    directory.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    log.warning("compilation cache %s: %s; running without it", directory,
                e.strerror or e)
    return None
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory
