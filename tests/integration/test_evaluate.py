"""`ferjax eval`: tables, any split with ten-crop, and ensembles of runs."""

import json
import os
import shutil

import numpy as np
import pytest

from ferjax import config as config_lib
from ferjax.evaluate import run_evaluation as evaluate
from ferjax.run.run_dir import RunDir
from helpers import REPO, ferjax_cli


def _earlier_copy(reference_run, path):
  """The reference run without its last checkpoint: 'latest' is earlier."""
  shutil.copytree(reference_run[0], path)
  run = RunDir(path)
  with run.checkpoints(run.read_config()) as ckpt:
    last = ckpt.latest_step()
  shutil.rmtree(path / "checkpoints" / str(last))
  return path


def test_eval_prints_a_table_by_default(reference_run):
  workdir, results = reference_run
  proc = ferjax_cli("eval", "--workdir", str(workdir), "--per-class")
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert "checkpoint best (step" in lines[0]
  assert "selected by test/accuracy" in lines[0]
  assert lines[1].split() == ["eval", "accuracy", "macro_f1", "loss",
                              "examples"]
  best = evaluate.evaluate_run(str(workdir))["results"]["test"]
  assert lines[2].split() == ["test", f"{best['accuracy']:.4f}",
                              f"{best['macro_f1']:.4f}", f"{best['loss']:.4f}",
                              str(best["num_examples"])]
  assert "per-class accuracy:" in lines
  assert any(line.split()[0] == "happy" for line in lines)


def test_ten_crop_on_any_split(reference_run):
  workdir, _ = reference_run
  plain = evaluate.evaluate_run(str(workdir), split="test[:200]")
  tta = evaluate.evaluate_run(str(workdir), split="test[:200]",
                              tta="ten_crop", crop_size=(40, 40))
  assert plain["results"]["test[:200]"]["num_examples"] == 200
  assert tta["results"]["test[:200] (ten_crop)"]["num_examples"] == 200
  assert tta["results"]["test[:200] (ten_crop)"]["loss"] != pytest.approx(
      plain["results"]["test[:200]"]["loss"], rel=1e-6)
  with pytest.raises(ValueError, match="--tta"):
    evaluate.evaluate_run(str(workdir), tta="five_crop")


def test_flip_averages_the_image_and_its_mirror(reference_run):
  workdir, _ = reference_run
  split = "test[:300]"
  plain = evaluate.evaluate_run(str(workdir), split=split)["results"][split]
  flip = evaluate.evaluate_run(str(workdir), split=split,
                               tta="flip")["results"][f"{split} (flip)"]
  assert flip["num_examples"] == 300
  assert flip["loss"] != pytest.approx(plain["loss"], rel=1e-6)
  assert flip["accuracy"] > plain["accuracy"] - 0.05, (flip, plain)


def test_ten_crop_on_a_split_the_run_never_configured(reference_run):
  """The default crop is 90% of the stored 48x48 image (43x43), not of the
  model's 32x32 input (a 29x29 crop, far below single-crop accuracy)."""
  workdir, _ = reference_run
  split = "test[300:900]"
  assert all(ev["split"] != split for ev in
             RunDir(workdir).read_config_dict()["evals"].values())
  plain = evaluate.evaluate_run(str(workdir), split=split)["results"][split]
  row = f"{split} (ten_crop)"
  tta = evaluate.evaluate_run(str(workdir), split=split,
                              tta="ten_crop")["results"][row]
  stored = evaluate.evaluate_run(str(workdir), split=split, tta="ten_crop",
                                 crop_size=(43, 43))["results"][row]
  assert tta == stored
  assert plain["accuracy"] > 0.3  # Chance is 1/7.
  assert tta["accuracy"] > plain["accuracy"] - 0.05, (tta, plain)


def test_ten_crop_keeps_the_runs_crop_size_on_another_split(reference_run,
                                                           tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(reference_run[0], workdir)
  config = json.loads((workdir / "config.json").read_text())
  config["evals"]["test_tencrop"] = {"split": "test[:300]", "tta": "ten_crop",
                                     "crop_size": [40, 40]}
  (workdir / "config.json").write_text(json.dumps(config))
  split = "test[300:500]"
  tta = evaluate.evaluate_run(str(workdir), split=split, tta="ten_crop")
  own = evaluate.evaluate_run(str(workdir), split=split, tta="ten_crop",
                              crop_size=(40, 40))
  assert tta["results"] == own["results"]


def test_probabilities_agree_with_the_evaluator_on_every_row(reference_run):
  """Row order over 4 devices and padding: argmax equals the confusion."""
  workdir, _ = reference_run
  member = evaluate._member(str(workdir), split="test[:203]",
                            checkpoint="best", tta=None, crop_size=None)
  (ev,) = member.evaluators.values()
  probs = ev.probabilities(member.variables[ev.weights])
  assert probs.shape == (203, 7)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  confusion = np.zeros((7, 7), int)
  np.add.at(confusion, (ev.labels, probs.argmax(-1)), 1)
  assert confusion.tolist() == ev(member.variables[ev.weights])[
      "confusion_matrix"]


def test_ensemble_of_three_runs(reference_run, tmp_path):
  a = str(reference_run[0])
  b = str(_earlier_copy(reference_run, tmp_path / "b"))
  proc = ferjax_cli("eval", "--workdir", a, "--workdir", b, "--workdir", a,
             "--split", "test[:300]", "--checkpoint", "latest")
  assert proc.returncode == 0, proc.stderr
  rows = [line.split()[0] for line in proc.stdout.splitlines()[2:6]]
  # Short names: each run's path below the members' common parent.
  base = os.path.commonpath([a, b])
  ra, rb = (os.path.relpath(r, base) for r in (a, b))
  assert proc.stdout.startswith(
      f"ensemble of 3 runs ({ra}, {rb}, {ra}) under {base} on ")
  # One "true" column: the members see the same examples.
  table = proc.stdout[proc.stdout.index("class distribution"):]
  header = table.splitlines()[1].split()
  assert header[:3] == ["class", "true", ra] and header.count("true") == 1
  assert header.count("predicted") == 4
  assert rows == [os.path.relpath(a, base), os.path.relpath(b, base),
                  os.path.relpath(a, base), "ensemble"]
  assert all(len(r) < len(a) for r in rows)
  result = evaluate.evaluate_ensemble([a, b, a], split="test[:300]",
                                      checkpoint="latest")
  for member, workdir in zip(result["members"], (a, b, a)):
    alone = evaluate.evaluate_run(workdir, split="test[:300]",
                                  checkpoint="latest")
    assert member["results"] == json.loads(json.dumps(alone["results"]))
  assert result["members"][0]["step"] > result["members"][1]["step"]
  # An ensemble of one model repeated is that model.
  same = evaluate.evaluate_ensemble([a, a], split="test[:300]",
                                    checkpoint="latest")
  ensemble = same["ensemble"]["results"]["test[:300]"]
  single = same["members"][0]["results"]["test[:300]"]
  assert ensemble["confusion_matrix"] == single["confusion_matrix"]
  assert ensemble["loss"] == pytest.approx(single["loss"], rel=1e-4)


def test_ensemble_needs_a_split(reference_run):
  a = str(reference_run[0])
  proc = ferjax_cli("eval", "--workdir", a, "--workdir", a)
  assert proc.returncode == 2 and "--split" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_ensemble_takes_a_checkpoint_per_member(reference_run):
  """Members trained for different budgets: one --checkpoint each, in order."""
  a = str(reference_run[0])
  run = RunDir(a)
  with run.checkpoints(run.read_config()) as ckpt:
    first, *_, last = ckpt.all_steps()
  proc = ferjax_cli("eval", "--workdir", a, "--workdir", a, "--split", "test[:100]",
             "--checkpoint", str(first), "--checkpoint", "latest", "--json")
  assert proc.returncode == 0, proc.stderr
  result = json.loads(proc.stdout)
  assert [m["step"] for m in result["members"]] == [first, last]
  assert [m["checkpoint"] for m in result["members"]] == [str(first),
                                                            "latest"]
  assert result["checkpoint"] is None
  proc = ferjax_cli("eval", "--workdir", a, "--workdir", a, "--workdir", a,
             "--split", "test[:100]", "--checkpoint", "best",
             "--checkpoint", "latest")
  assert proc.returncode == 2
  assert "--checkpoint: expected one for every run or one per --workdir (3)" \
      in proc.stderr and "got 2" in proc.stderr


def test_ten_crop_on_a_split_keeps_the_runs_own_crop_size():
  """LeNet-5's recipe crops 44 of the stored 48 pixels for a 32x32 input:
  `--split public_test --tta ten_crop` must not fall back to 90% of 32."""
  config = config_lib.load_config(str(REPO / "experiments/fer2013_lenet.py"))
  assert tuple(config.input.image_size) == (32, 32)
  evals = evaluate._eval_configs(config, "public_test", "ten_crop", None)
  # Named for what it is: never the single-crop row's name.
  assert list(evals) == ["public_test (ten_crop)"]
  assert tuple(evals["public_test (ten_crop)"].crop_size) == (44, 44)
  plain = evaluate._eval_configs(config, "public_test", None, None)
  assert plain["public_test"].tta == "none"
  chosen = evaluate._eval_configs(config, "public_test", "ten_crop", (40, 40))
  assert tuple(chosen["public_test (ten_crop)"].crop_size) == (40, 40)
  # Another split: the run's ten-crop eval of any split says what it crops.
  other = evaluate._eval_configs(config, "train[90%:]", "ten_crop", None)
  assert tuple(other["train[90%:] (ten_crop)"].crop_size) == (44, 44)
  own = evaluate._eval_configs(config, None, "ten_crop", None)
  assert set(own) == {"val (ten_crop)", "public_test (ten_crop)",
                      "public_test_tencrop"}
