"""A geometric run end to end: landmarks extracted once and cached beside
the prepared data, the SVM trained, evaluated and reported through the
commands the CNNs use, the low-score meshes counted per split."""

import json

import numpy as np
import pytest

from helpers import REPO
from ferjax import cli
from ferjax import config as config_lib
from ferjax.data import landmarks as landmarks_data
from ferjax.data import loading
from ferjax.run.run_dir import RunDir
from ferjax.train import loop

GEOMETRY = str(REPO / "experiments" / "fer2013_geometry.py")


@pytest.fixture
def small_chunks(monkeypatch):
  # The cache's files hold 4,096 faces; a test meshes a few hundred.
  monkeypatch.setattr(landmarks_data, "CHUNK", 128)


def geometry_config(data_dir: str, kernel: str = "linear"):
  config = config_lib.load_config(f"{GEOMETRY}:kernel={kernel}")
  config.input.dataset = "synthetic_fer"
  config.input.builder_config = None
  config.input.data_dir = data_dir
  config.input.train_split = "train[:192]"
  config.evals.val.split = "test[:64]"
  config.evals.public_test.split = "test[64:128]"
  config.num_epochs = 40
  config.model.kwargs.centres = 64
  return config


@pytest.mark.slow  # 2.5 min on a busy 2-core CPU: FaceMesh on 320 faces.
def test_a_geometric_run_trains_evaluates_and_caches_its_landmarks(
    synthetic_data_dir, small_chunks, tmp_path, capsys):
  workdir = tmp_path / "run"
  results = loop.train_and_evaluate(
      geometry_config(synthetic_data_dir, "rbf"), str(workdir), argv=["t"])
  builder = loading.prepared_builder("synthetic_fer",
                                     data_dir=synthetic_data_dir)
  cached = sorted(p.name for p in landmarks_data.chunk_path(
      builder, "train", 0).parent.iterdir())
  assert cached == ["0000000.npz", "0000128.npz"]  # Only what was read.
  meshes = landmarks_data.read_meshes(builder, "test[64:128]")
  assert meshes.points.shape == (64, 468, 3)
  assert results["public_test"]["low_score_meshes"] == meshes.low_score
  assert results["public_test"]["num_examples"] == 64
  manifest = RunDir(workdir).read_manifest()
  assert manifest["dataset"]["low_score_meshes"]["train[:192]"] == int(
      np.sum(landmarks_data.read_meshes(builder, "train[:192]").scores
             < landmarks_data.LOW_SCORE))
  events = [e for e in RunDir(workdir).events() if e["split"] == "train"]
  assert events and events[0]["fit_seconds"] > 0
  # A second call finds the fitted model and only evaluates it.
  again = loop.train_and_evaluate(
      geometry_config(synthetic_data_dir, "rbf"), str(workdir), argv=["t"])
  assert again["public_test"]["accuracy"] == results["public_test"]["accuracy"]
  assert cli.main(["eval", "--workdir", str(workdir), "--json"]) == 0
  evaluated = json.loads(capsys.readouterr().out)
  assert evaluated["results"]["public_test"]["accuracy"] == pytest.approx(
      results["public_test"]["accuracy"])
  assert cli.main(["report", str(workdir)]) == 0
  assert "public_test/accuracy" in (workdir / "report.md").read_text()
