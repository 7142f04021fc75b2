"""Temperature scaling, ECE and NLL; `ferjax calibrate` through eval and
predict; the predicted-class distribution of `ferjax eval`."""

import json
import shutil

import numpy as np
import pytest

from ferjax import calibration
from ferjax import metrics as metrics_lib
from ferjax.commands import tables
from ferjax.evaluate import class_saliency
from ferjax.evaluate import run_evaluation
from ferjax.labels import FER2013_CLASSES
from ferjax.recognition import classifier as classifier_lib
from ferjax.recognition import pipeline
from ferjax.run.run_dir import RunDir, RunDirError
from helpers import DarkSquares, ferjax_cli


def _sampled(n: int, temperature: float, seed: int = 0):
  """Logits that are ``temperature`` times too sharp for labels drawn from
  the softmax of the true ones."""
  rng = np.random.default_rng(seed)
  true = rng.normal(0.0, 2.0, (n, 7))
  p = calibration.scaled_probabilities(true)
  labels = (p.cumsum(-1) < rng.random((n, 1))).sum(-1)
  return true * temperature, np.minimum(labels, 6)


@pytest.mark.parametrize("t0", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_that_sharpened_the_logits(t0):
  logits, labels = _sampled(20_000, t0)
  fitted = calibration.fit_temperature(logits, labels)
  assert fitted == pytest.approx(t0, rel=0.05)
  assert calibration.fit_temperature(logits, labels) == fitted  # Deterministic.
  assert calibration.nll(logits, labels, fitted) <= calibration.nll(
      logits, labels, t0) + 1e-9


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident():
  logits, labels = _sampled(20_000, 1.0)
  assert calibration.ece(calibration.scaled_probabilities(logits),
                         labels) < 0.02
  sharp = calibration.scaled_probabilities(logits * 4)
  assert calibration.ece(sharp, labels) > 0.15
  # Every example right at confidence 1 is calibrated; wrong at 1 is not.
  one_hot = np.eye(3)[[0, 1, 2, 0]]
  assert calibration.ece(one_hot, [0, 1, 2, 0]) == 0.0
  assert calibration.ece(one_hot, [1, 2, 0, 1]) == 1.0


def test_reliability_bins_are_equal_width_and_count_every_example():
  probs = np.array([[0.2, 0.8], [0.5, 0.5], [0.01, 0.99], [1.0, 0.0]])
  bins = calibration.reliability_bins(probs, [1, 0, 0, 0], num_bins=10)
  assert sum(bins["count"]) == 4
  assert bins["count"][4] == 1 and bins["count"][7] == 1  # 0.5, 0.8
  assert bins["count"][9] == 2  # 0.99 and 1.0
  assert bins["accuracy"][9] == 0.5


def test_temperature_scaling_keeps_every_argmax():
  logits, labels = _sampled(5_000, 3.0)
  fitted = calibration.fit_temperature(logits, labels)
  assert fitted > 2
  np.testing.assert_array_equal(
      calibration.scaled_probabilities(logits, fitted).argmax(-1),
      logits.argmax(-1))
  measured = calibration.measures(logits, labels, fitted)
  assert measured["ece_calibrated"] < measured["ece"] / 3
  assert measured["nll_calibrated"] < measured["nll"]


def test_bad_logits_are_refused():
  with pytest.raises(ValueError, match="labels"):
    calibration.fit_temperature(np.zeros((3, 2)), [0, 1])
  with pytest.raises(ValueError, match="at least one"):
    calibration.nll(np.zeros((0, 2)), [])


@pytest.fixture(scope="module")
def calibrated_run(reference_run, tmp_path_factory):
  """A copy of the reference run calibrated by `ferjax calibrate`."""
  workdir = tmp_path_factory.mktemp("calibrated") / "run"
  shutil.copytree(reference_run[0], workdir)
  proc = ferjax_cli("calibrate", "--workdir", str(workdir))
  assert proc.returncode == 0, proc.stderr
  assert "temperature" in proc.stdout and "ece15" in proc.stdout
  return workdir


def test_calibrate_stores_the_temperature_and_its_diagram(calibrated_run):
  run = RunDir(calibrated_run)
  record = run.read_calibration()
  # The reference run selects its best checkpoint on 'test[:300]'.
  assert record["split"] == "test[:300]" and record["num_examples"] == 300
  logits, labels, step = run_evaluation.split_logits(
      str(calibrated_run), split="test[:300]")
  assert record["step"] == step
  assert record["temperature"] == pytest.approx(
      calibration.fit_temperature(logits, labels), rel=1e-6)
  assert record["nll_calibrated"] <= record["nll"]
  assert sum(record["reliability"]["after"]["count"]) == 300
  assert run.reliability_diagram_path.read_bytes()[:4] == b"\x89PNG"


def test_eval_reports_calibrated_nll_and_ece(calibrated_run):
  temperature = RunDir(calibrated_run).read_calibration()["temperature"]
  result = run_evaluation.evaluate_run(str(calibrated_run))
  measured = result["results"]["test"]["calibration"]
  assert measured["temperature"] == temperature
  logits, labels, _ = run_evaluation.split_logits(str(calibrated_run),
                                                  split="test[:300]")
  assert measured["nll_calibrated"] == pytest.approx(
      calibration.nll(logits, labels, temperature), rel=1e-6)
  # The argmax, hence accuracy, is the uncalibrated one.
  assert result["results"]["test"]["accuracy"] == pytest.approx(
      float((logits.argmax(-1) == labels).mean()))
  text = tables.format_results(result)
  assert f"temperature {temperature:.4f}" in text
  assert "ece15 (T)" in text


def test_predict_scores_are_the_calibrated_softmax(reference_run,
                                                   calibrated_run):
  plain = classifier_lib.load_classifier(reference_run[0])
  calibrated = classifier_lib.load_classifier(calibrated_run)
  temperature = RunDir(calibrated_run).read_calibration()["temperature"]
  assert plain.temperature is None
  assert calibrated.temperature == temperature
  image = np.full((300, 300, 3), 230, np.uint8)
  image[100:190, 100:190] = 0
  before = pipeline.recognize(image, plain, DarkSquares())[0]
  after = pipeline.recognize(image, calibrated, DarkSquares())[0]
  p = np.array([before.scores[c] for c in FER2013_CLASSES])
  np.testing.assert_allclose(
      [after.scores[c] for c in FER2013_CLASSES],
      calibration.scaled_probabilities(np.log(p), temperature), atol=1e-5)
  assert after.label == before.label
  assert json.loads(json.dumps(after.to_json()))["calibrated"] is True
  assert before.to_json()["calibrated"] is False


def test_a_corrupt_calibration_file_is_an_error_naming_it(calibrated_run,
                                                           tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(calibrated_run, workdir)
  path = workdir / "calibration.json"
  for text in ('{"temperature": ', '{"temperature": -1, "step": 3}',
               '{"step": 3}', "[1.5]"):
    path.write_text(text)
    with pytest.raises(RunDirError, match="calibration.json"):
      classifier_lib.load_classifier(workdir)
  proc = ferjax_cli("eval", "--workdir", str(workdir))
  assert proc.returncode == 2
  assert str(path) in proc.stderr and "Traceback" not in proc.stderr


def test_a_temperature_of_another_checkpoint_is_not_applied(calibrated_run,
                                                            tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(calibrated_run, workdir)
  run = RunDir(workdir)
  record = run.read_calibration()
  # A file of before, with one record: another step's.
  (workdir / "calibration.json").write_text(json.dumps(
      {**record, "step": record["step"] + 1}))
  assert classifier_lib.load_classifier(workdir).temperature is None
  result = run_evaluation.evaluate_run(str(workdir))
  assert "temperature" not in result["results"]["test"]["calibration"]
  assert "not this checkpoint's" in tables.format_results(result)


def test_calibrate_pretrained_needs_out_and_out_leaves_the_run_alone(
    reference_run, tmp_path):
  proc = ferjax_cli("calibrate", "--pretrained")
  assert proc.returncode == 2
  assert "--out" in proc.stderr and "Traceback" not in proc.stderr
  out = tmp_path / "copy"
  proc = ferjax_cli("calibrate", "--workdir", str(reference_run[0]),
                    "--out", str(out))
  assert proc.returncode == 0, proc.stderr
  assert RunDir(reference_run[0]).read_calibration() is None
  assert RunDir(out).read_calibration()["temperature"] > 0


def test_an_always_neutral_model_shows_100_percent_neutral_predicted():
  labels = np.arange(70) % 7
  probs = np.zeros((70, 7), np.float32)
  probs[:, FER2013_CLASSES.index("neutral")] = 1.0
  metrics = metrics_lib.from_probabilities(probs, labels, FER2013_CLASSES)
  true, predicted = metrics_lib.class_distribution(
      metrics["confusion_matrix"])
  np.testing.assert_allclose(true, np.full(7, 1 / 7))
  np.testing.assert_allclose(predicted, np.eye(7)[6])
  text = tables.format_results(
      {"workdir": "w", "step": 1, "checkpoint": "latest",
       "results": {"test": metrics}})
  rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()
          if line.split() and line.split()[0] in FER2013_CLASSES}
  assert rows["neutral"] == ["14.3%", "100.0%"]
  assert rows["happy"] == ["14.3%", "0.0%"]


def test_an_ensemble_s_distribution_has_one_true_column():
  labels = np.arange(70) % 7
  always = lambda c: metrics_lib.from_probabilities(
      np.eye(7, dtype=np.float32)[np.full(70, c)], labels, FER2013_CLASSES)
  member = {"workdir": "/r/b", "step": 1, "checkpoint": "best",
            "results": {"test": always(6)}}
  text = tables.format_results(
      {"members": [{**member, "workdir": "/r/b"},
                   {**member, "workdir": "/r/a",
                    "results": {"test": always(3)}}],
       "checkpoint": "best",
       "ensemble": {"results": {"test": always(3)}}})
  assert text.startswith("ensemble of 2 runs (b, a) under /r on test")
  lines = text.splitlines()
  start = lines.index(
      "class distribution (share of examples, true and predicted):")
  assert lines[start + 1].split() == [
      "class", "true", "b", "(step", "1)", "predicted", "a", "(step", "1)",
      "predicted", "ensemble", "(mean", "softmax)", "predicted"]
  assert lines[start + 8].split() == ["neutral", "14.3%", "100.0%", "0.0%",
                                      "0.0%"]


def test_eval_prints_the_predicted_class_distribution(reference_run):
  proc = ferjax_cli("eval", "--workdir", str(reference_run[0]))
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  start = lines.index(
      "class distribution (share of examples, true and predicted):")
  assert lines[start + 1].split() == ["class", "test", "true", "predicted"]
  rows = [line.split() for line in lines[start + 2:start + 9]]
  assert [r[0] for r in rows] == list(FER2013_CLASSES)
  for column in (1, 2):
    assert sum(float(r[column].rstrip("%")) for r in rows) == pytest.approx(
        100, abs=0.5)
  result = run_evaluation.evaluate_run(str(reference_run[0]))
  confusion = np.asarray(result["results"]["test"]["confusion_matrix"])
  happy = FER2013_CLASSES.index("happy")
  assert rows[happy][2] == f"{100 * confusion[:, happy].sum() / 300:.1f}%"
  assert "calibration (softmax as trained" in proc.stdout


def test_eval_draws_the_mean_saliency_of_each_class(reference_run, tmp_path):
  png = tmp_path / "by_class.png"
  proc = ferjax_cli("eval", "--workdir", str(reference_run[0]),
                    "--saliency-by-class", str(png))
  assert proc.returncode == 0, proc.stderr
  assert png.read_bytes()[:4] == b"\x89PNG"
  result = class_saliency.mean_saliency_by_class(
      str(reference_run[0]), split="test[:300]")
  assert result["method"] == "grad_cam" and result["layer"] == "Conv_1"
  assert result["maps"].shape == (7, 32, 32)
  assert result["mean_faces"].shape == (7, 48, 48)
  assert sum(result["counts"]) == 300
  present = np.asarray(result["counts"]) > 0
  assert np.isfinite(result["maps"][present]).all()
  assert (result["maps"][present] <= 1).all()
  # Each class's own map: they differ from class to class.
  assert not np.allclose(result["maps"][0], result["maps"][3], atol=1e-3)
  proc = ferjax_cli("eval", "--workdir", str(reference_run[0]), "--workdir",
                    str(reference_run[0]), "--split", "test[:50]",
                    "--saliency-by-class", str(png))
  assert proc.returncode == 2 and "one run" in proc.stderr


def test_the_reliability_diagram_s_legend_explains_the_shading():
  from ferjax.evaluate import calibration_plots  # pylint: disable=g-import-not-at-top
  bins = {"count": [0, 3, 40, 9], "accuracy": [0, 0.3, 0.5, 0.9],
          "confidence": [0, 0.35, 0.6, 0.85]}
  fig = calibration_plots.reliability_figure({
      "temperature": 1.5, "reliability": {"before": bins, "after": {
          **bins, "count": [1, 20, 20, 11]}},
      "ece": 0.1, "nll": 1.2, "ece_calibrated": 0.05, "nll_calibrated": 1.1,
      "split": "val", "num_examples": 52, "step": 7})
  texts = [[t.get_text() for t in ax.get_legend().get_texts()]
           for ax in fig.axes]
  assert texts[0][-2:] == ["accuracy, bin of 40 examples (most)",
                           "accuracy, bin of few examples"]
  assert texts[1][-2] == "accuracy, bin of 20 examples (most)"
  assert "calibrated" in texts[0] and "mean confidence" in texts[0]
