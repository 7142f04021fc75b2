"""Quickstart sweep: experiments/quickstart.py over 2 seeds x 2 learning rates.

  ferjax sweep --config experiments/quickstart_sweep.py:runlocal \
      --workdir runs/quickstart_sweep --concurrent-trials 2 \
      --config.parallel.cpu_devices=1
  ferjax report runs/quickstart_sweep

Relaunching the sweep command after an interruption skips finished trials
and resumes the others. On a 2-core CPU host give each of the 2 parallel
trials one CPU device, as above; without ``:runlocal`` each trial trains the
full 8 epochs.
"""

import pathlib

import ml_collections

from ferjax import config as config_lib
from ferjax.experiment import sweep

_QUICKSTART = pathlib.Path(__file__).with_name("quickstart.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return config_lib.load_config(f"{_QUICKSTART}:{arg}" if arg
                                else str(_QUICKSTART))


def get_sweep(arg: str | None = None) -> list[dict]:
  del arg  # The trials are the same for every get_config argument.
  return sweep.product(sweep.axis("seed", [0, 1]),
                       sweep.axis("optimizer.learning_rate", [0.05, 0.1]))
