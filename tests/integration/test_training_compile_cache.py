"""Training reads its compiled programs from the persistent cache.

A sweep's trials, reruns and resumptions compile the same train step,
evaluators and checks; the second identical run adds nothing to the cache
(every program was a hit), and ``FERJAX_COMPILATION_CACHE=off`` writes none.
"""

import os
import pathlib
import subprocess
import sys

from helpers import QUICKSTART, tiny_overrides


def _train(workdir: pathlib.Path, data_dir: str, cache: str) -> str:
  env = {**os.environ, "FERJAX_COMPILATION_CACHE": cache,
         "XDG_CACHE_HOME": str(workdir.parent / "xdg")}
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run(
      [sys.executable, "-m", "ferjax.cli", "train", "--config", QUICKSTART,
       "--workdir", str(workdir), *(f"--config.{o}" for o in tiny_overrides(
           data_dir, **{"input.train_split": "train[:256]", "num_epochs": 1,
                        "parallel.cpu_devices": 1}))],
      env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  return proc.stderr


def _entries(cache: pathlib.Path) -> set[str]:
  return {p.name for p in cache.iterdir()} if cache.exists() else set()


def test_a_second_identical_run_compiles_nothing_new(synthetic_data_dir,
                                                     tmp_path):
  cache = tmp_path / "cache"
  _train(tmp_path / "first", synthetic_data_dir, str(cache))
  first = _entries(cache)
  assert first, "the first run cached nothing"
  _train(tmp_path / "second", synthetic_data_dir, str(cache))
  assert _entries(cache) == first
  _train(tmp_path / "off", synthetic_data_dir, "off")
  assert _entries(cache) == first
  assert not (tmp_path / "xdg").exists()
