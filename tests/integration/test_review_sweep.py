"""The full-scale four-family sweep (experiments/fer2013_review.py): each
trial trains its own family's recipe, ``:runlocal`` makes every trial tiny,
and gpu/gpu_review.sh runs it end to end."""

import json
import os
import shutil
import signal
import subprocess

import pytest

from ferjax import config as config_lib
from ferjax.experiment import sweep
from ferjax.models import summary
from ferjax.run.run_dir import RunDir, read_metrics
from ferjax.train import optimizer
from helpers import REPO, SHARED_FER2013, make_run

import review_budget  # noqa: E402  (gpu/ is on pytest's pythonpath)
import smoke_note  # noqa: E402

REVIEW = str(REPO / "experiments" / "fer2013_review.py")
EXPERIMENTS = REPO / "experiments"
# The family's own experiment, as its docstring's command trains it.
RECIPES = {
    "lenet5": "fer2013_lenet.py",
    "alexnet": "fer2013_alexnet.py",
    "vgg11_bn": "fer2013_vgg.py:depth=11,bn=True",
    "googlenet": "fer2013_googlenet.py",
}
COMMON = ["input.manual_dir=/data/fer2013", "model.dtype=bfloat16"]


def test_each_trial_trains_its_family_recipe_with_its_seed(tmp_path):
  trials = sweep.plan(REVIEW, COMMON, tmp_path / "sw")
  assert [t.name for t in trials] == [
      f"{f}-seed{s}" for f in RECIPES for s in range(3)]
  for trial in trials:
    family = trial.name.rsplit("-", 1)[0]
    config = sweep.trial_config(REVIEW, COMMON, trial)
    recipe = config_lib.apply_overrides(
        config_lib.load_config(str(EXPERIMENTS / RECIPES[family])),
        [*COMMON, f"seed={trial.overrides['seed']}"])
    assert config_lib.to_json(config) == config_lib.to_json(recipe)
  shapes = {t.name.rsplit("-", 1)[0]: (
      tuple(c.input.image_size), c.input.channels, c.model.name, c.num_epochs)
            for t in trials for c in [sweep.trial_config(REVIEW, [], t)]}
  assert shapes == {"lenet5": ((32, 32), 3, "lenet5", 30),
                    "alexnet": ((48, 48), 1, "alexnet_bn", 100),
                    "vgg11_bn": ((48, 48), 1, "vgg11_bn", 100),
                    "googlenet": ((48, 48), 1, "googlenet_bn", 100)}


def test_runlocal_shrinks_only_the_epochs_and_splits():
  for family in RECIPES:
    full = config_lib.load_config(f"{REVIEW}:family={family}")
    tiny = config_lib.load_config(f"{REVIEW}:family={family},runlocal")
    changed = config_lib.differing_fields(full.to_dict(), tiny.to_dict())
    assert {f.rsplit(".", 1)[-1] for f in changed} <= {
        "num_epochs", "train_split", "split", "warmup_epochs"}, (
            family, changed)
    assert (tiny.num_epochs, tiny.input.train_split) == (1, "train[:128]")
    sizes = {ev.tta: review_budget.split_size(ev.split)
             for ev in tiny.evals.values()}
    assert sizes == {"none": 64, "ten_crop": 16}
    # Validation stays out of the training images, and off PublicTest.
    assert tiny.evals.val.split == "train[-64:]"
    assert tiny.checkpoint.best_metric == "val/accuracy"


def test_every_runlocal_trial_s_first_step_trains():
  """No warmup in a one-epoch smoke test: LeNet-5 (batch 128, 128 images)
  takes one step, which warmup would give learning rate 0."""
  for family in RECIPES:
    config = config_lib.load_config(f"{REVIEW}:family={family},runlocal")
    steps = -(-review_budget.split_size(config.input.train_split)
              // config.batch_size)
    schedule = optimizer.learning_rate_schedule(
        config.optimizer, steps_per_epoch=steps, total_steps=steps)
    assert float(schedule(0)) == pytest.approx(
        config.optimizer.learning_rate), family
  full = config_lib.load_config(f"{REVIEW}:family=lenet5")
  assert full.optimizer.warmup_epochs == 1.0  # The recipe keeps its warmup.


def test_the_runlocal_budget_is_cpu_time(capsys):
  assert review_budget.main(["runlocal,seeds=2"]) == 0
  out = capsys.readouterr().out
  assert "CPU smoke test" in out and "hours" not in out
  total = 2 * sum(review_budget.RUNLOCAL_CPU_SECONDS.values())
  assert f"about {-(-total // 60)} minutes" in out


def test_the_smoke_note_says_what_it_is_and_gives_chance(tmp_path):
  run = tmp_path / "sw" / "lenet5-seed0"
  make_run(run, seed=0, lr=0.1, accuracies=[0.5])
  (run / "metrics.jsonl").write_text(json.dumps(
      {"step": 1, "split": "public_test", "accuracy": 0.5,
       "confusion_matrix": [[1, 1, 0], [2, 10, 2], [0, 2, 2]]}) + "\n")
  report = tmp_path / "sw" / "report.md"
  report.write_text("# report\n")
  assert smoke_note.main([str(tmp_path / "sw"), "--into", str(report)]) == 0
  assert smoke_note.main([str(tmp_path / "sw"), "--into", str(report)]) == 0
  text = report.read_text()
  assert text.startswith("**SMOKE TEST**") and text.count("SMOKE TEST") == 1
  assert ("- chance on public_test (20 images): uniform guessing 1/3 = "
          "0.333, always 'happy' 0.700\n") in text
  assert text.endswith("# report\n")


def test_family_argument_errors_and_one_family_sweeps():
  with pytest.raises(config_lib.ConfigError, match="'family' is needed"):
    config_lib.load_config(REVIEW)
  with pytest.raises(config_lib.ConfigError, match="expected one of lenet5"):
    config_lib.load_config(f"{REVIEW}:family=resnet")
  module, _ = config_lib.load_experiment(REVIEW)
  assert [(t.name, t.arg) for t in module.get_sweep("family=googlenet,"
                                                    "seeds=2,runlocal")] == [
      ("googlenet-seed0", "family=googlenet,runlocal"),
      ("googlenet-seed1", "family=googlenet,runlocal")]
  with pytest.raises(config_lib.ConfigError, match="'seeds'"):
    module.get_sweep("seeds=0")


def test_budget_counts_the_splits_and_evaluations_of_a_trial():
  assert review_budget.split_size("train[:90%]") == 25_838
  assert review_budget.split_size("train[90%:]") == 2_871
  assert review_budget.split_size("public_test") == 3_589
  assert [review_budget.evaluations(e, n) for e, n in
          [(None, 30), (10, 100), (10, 25), (10, 1)]] == [30, 10, 3, 1]
  config = config_lib.load_config(f"{REVIEW}:family=vgg11_bn,runlocal")
  cost = review_budget.trial_cost(config)
  # 2 steps of 64 training images; 64 + 64 + 10 x 16 evaluated crops.
  assert cost["steps"] == 2 + 1 + 1 + 3
  assert cost["flops"] == pytest.approx(
      cost["mflops_per_image"] * 1e6 * (3 * 128 + 64 + 64 + 160))
  # The family's model kwargs count: AlexNet's recipe has a stride-2 stem.
  alexnet = review_budget.trial_cost(
      config_lib.load_config(f"{REVIEW}:family=alexnet"))
  assert alexnet["mflops_per_image"] == pytest.approx(summary.model_summary(
      "alexnet_bn", (48, 48, 1), 7, kwargs={"small_stride": 2})["flops"] / 1e6)


def _mini_fer2013(root):
  """30 training and 10 PublicTest images per class from the shared copy."""
  for split, n in (("train", 30), ("test", 10)):
    for folder in sorted((SHARED_FER2013 / split).iterdir()):
      (root / split / folder.name).mkdir(parents=True)
      for f in sorted(folder.iterdir())[:n]:
        shutil.copy(f, root / split / folder.name)
  return root


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not SHARED_FER2013.is_dir(),
                    reason=f"{SHARED_FER2013} absent")
def test_gpu_script_runs_the_runlocal_sweep_end_to_end_on_cpu(tmp_path):
  env = {**os.environ, "FER2013_DIR": str(_mini_fer2013(tmp_path / "fer")),
         "TFDS_DIR": str(tmp_path / "tfds"), "WORKDIR": str(tmp_path / "sw"),
         "SEEDS": "1", "FERJAX": str(REPO / ".venv" / "bin" / "ferjax")}
  if not os.access(env["FERJAX"], os.X_OK):
    env["FERJAX"] = shutil.which("ferjax") or "ferjax"
  # Its own process group, so that a failing test stops the sweep's trials.
  proc = subprocess.Popen(["bash", str(REPO / "gpu" / "gpu_review.sh"),
                           "--runlocal"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    out, err = proc.communicate(timeout=3000)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGTERM)
      proc.wait()
  assert proc.returncode == 0, out[-3000:] + err[-3000:]
  for family in RECIPES:
    assert f"\n{family} " in out  # its expected-time row
  summary = json.loads((tmp_path / "sw" / sweep.SWEEP_FILE).read_text())
  assert summary["counts"] == {"finished": 4}
  for family in RECIPES:
    run = tmp_path / "sw" / f"{family}-seed0"
    assert RunDir(run).is_finished()
    assert RunDir(run).read_config().model.dtype == "float32"
    evals = {e["split"]: e for e in read_metrics(run) if e["split"] != "train"}
    assert set(evals) == {"val", "public_test", "public_test_tencrop"}
    for e in evals.values():
      assert 0.0 <= e["accuracy"] <= 1.0 and "confusion_matrix" in e
  assert (tmp_path / "sw" / "report.md").exists()
