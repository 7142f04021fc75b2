"""Evaluates a finished (or running) run's checkpoint on any split."""

import pathlib
from typing import Any

import ml_collections

from ferjax import config as config_lib
from ferjax.train import checkpoint as checkpoint_lib
from ferjax.train.loop import RunSetup
from ferjax.train.parallel import Parallel


def load_run_config(workdir: str | pathlib.Path) -> ml_collections.ConfigDict:
  """The resolved config a run wrote, with a clear error if there is none."""
  path = pathlib.Path(workdir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
        f"{workdir} is not a ferjax run directory: {path} does not exist")
  return config_lib.from_json(path.read_text())


def select_step(ckpt: checkpoint_lib.Checkpoints, which: str,
                workdir: str | pathlib.Path) -> int:
  """'best', 'latest' or a step number, resolved to a saved step."""
  if which == "best":
    step = ckpt.best_step()
  elif which == "latest":
    step = ckpt.latest_step()
  elif which.isdigit():
    step = int(which)
    if step not in ckpt.all_steps():
      raise FileNotFoundError(
          f"{workdir}: no checkpoint at step {step}; saved steps: "
          f"{', '.join(map(str, ckpt.all_steps())) or 'none'}")
  else:
    raise ValueError(f"--checkpoint: expected best, latest or a step number, "
                     f"got {which!r}")
  if step is None:
    raise FileNotFoundError(f"{workdir} holds no checkpoint yet")
  return step


def evaluate_run(workdir: str, *, split: str | None = None,
                 checkpoint: str = "best") -> dict[str, Any]:
  """Metrics of a run's checkpoint on ``split`` (default: its evals)."""
  config = load_run_config(workdir)
  if split is not None:
    matching = [ev for ev in config.evals.values() if ev.split == split]
    eval_cfg = matching[0] if matching else ml_collections.ConfigDict(
        {"split": split, "tta": "none"})
    config.evals = ml_collections.ConfigDict({split: eval_cfg})
  setup = RunSetup(config, Parallel.from_config(config.parallel))
  ckpt = checkpoint_lib.Checkpoints(
      pathlib.Path(workdir) / "checkpoints",
      best_metric=config.checkpoint.best_metric,
      best_mode=config.checkpoint.best_mode, read_only=True)
  step = select_step(ckpt, checkpoint, workdir)
  state = setup.parallel.replicate(ckpt.restore(step, setup.init_state()))
  results = {name: ev(state) for name, ev in setup.evaluators.items()}
  return {"workdir": str(workdir), "step": step, "checkpoint": checkpoint,
          "results": results}

