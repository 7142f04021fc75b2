"""Evaluates a finished (or running) run's checkpoint on any split.

Builds only what evaluation needs: the eval splits (never the training
split), the model and the evaluators; the checkpoint is read as model
variables, without an optimizer.
"""

from typing import Any

import ml_collections

from ferjax.run_dir import RunDir
from ferjax.train import setup
from ferjax.train.parallel import Parallel


def evaluate_run(workdir: str, *, split: str | None = None,
                 checkpoint: str = "best") -> dict[str, Any]:
  """Metrics of a run's checkpoint on ``split`` (default: its evals)."""
  run = RunDir(workdir)
  config = run.read_config()
  if split is not None:
    matching = [ev for ev in config.evals.values() if ev.split == split]
    eval_cfg = matching[0] if matching else ml_collections.ConfigDict(
        {"split": split, "tta": "none"})
    config.evals = ml_collections.ConfigDict({split: eval_cfg})
  with run.checkpoints(config) as ckpt:
    step = run.resolve_step(ckpt, checkpoint)
    restored = ckpt.restore_variables(step)
  parallel = Parallel.from_config(config.parallel)
  data = setup.load_data(config, with_train=False)
  _, model = setup.models(config, len(data.info.class_names))
  evaluators = setup.evaluators(config, data.eval_splits, parallel=parallel,
                                model=model,
                                class_names=data.info.class_names)
  replicated = parallel.replicate(restored)
  results = {name: ev(replicated) for name, ev in evaluators.items()}
  return {"workdir": str(workdir), "step": step, "checkpoint": checkpoint,
          "results": results}
