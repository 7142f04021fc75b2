"""Four CPU devices under deliberate CPU overload: every run finishes.

XLA:CPU runs each device's share of a collective on its own thread and
aborts the process when one of them misses the rendezvous by a timeout. With
other work on every core, that must not happen to any supported setting.
Slow: ``FERJAX_LOAD_RUNS`` (default 2) one-epoch quickstart runs per backend,
a minute or more each on two busy cores.
"""

import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "experiments" / "quickstart.py")


def _busy_loops(count: int) -> list[subprocess.Popen]:
  return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
          for _ in range(count)]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("backend", ["pmap", "shard_map"])
def test_four_cpu_devices_train_under_load(synthetic_data_dir, tmp_path,
                                           backend):
  runs = int(os.environ.get("FERJAX_LOAD_RUNS", "2"))
  env = {**os.environ, "PYTHONUNBUFFERED": "1",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  busy = _busy_loops(2 * (os.cpu_count() or 1))
  try:
    for run in range(runs):
      start = time.monotonic()
      proc = subprocess.run(
          [sys.executable, "-m", "ferjax.cli", "train", "--config", QUICKSTART,
           "--workdir", str(tmp_path / f"run{run}"), "--config.num_epochs=1",
           f"--config.parallel.backend={backend}",
           f"--config.input.data_dir={synthetic_data_dir}"],
          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
      load = os.getloadavg()[0]
      print(f"{backend} run {run + 1}/{runs}: exit {proc.returncode} after "
            f"{time.monotonic() - start:.0f} s, load average {load:.1f}")
      assert proc.returncode == 0, proc.stderr[-3000:]
      assert "rendezvous" not in proc.stderr
      assert "test: accuracy=" in proc.stdout
  finally:
    for p in busy:
      p.kill()
      p.wait()
