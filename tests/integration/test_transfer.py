"""Starting from another run, freezing and per-group learning rates."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from helpers import final_params, flat, short_config, tiny_config
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.train import init_from
from ferjax.train import loop
from ferjax.train import setup as setup_lib

HEAD = "Dense_1"  # LeNet-5's classifier: the only Dense num_classes wide.
BACKBONE = f"(?!{HEAD}/).*"


def best_variables(workdir: pathlib.Path) -> dict:
  ckpt = checkpoint_lib.Checkpoints(workdir / "checkpoints", read_only=True,
                                    best_metric="test/accuracy")
  try:
    return ckpt.restore_variables(ckpt.best_step())
  finally:
    ckpt.close()


@pytest.fixture(scope="module")
def source_run(synthetic_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("source")
  loop.train_and_evaluate(short_config(synthetic_data_dir), workdir)
  return workdir


@pytest.fixture(scope="module")
def frozen_run(source_run, synthetic_data_dir, tmp_path_factory):
  """Backbone frozen, from a copy of the source (the resume test removes it)."""
  source = tmp_path_factory.mktemp("copy") / "source"
  shutil.copytree(source_run, source)
  workdir = tmp_path_factory.mktemp("frozen")
  config = short_config(synthetic_data_dir, **{
      "init_from.workdir": str(source),
      "optimizer.frozen": f"('{BACKBONE}',)"})
  results = loop.train_and_evaluate(config, workdir)
  return workdir, source, config, results


def loaded_state(config, source: pathlib.Path, class_names=None):
  setup = setup_lib.training(config,
                             loop.Parallel.from_config(config.parallel))
  fresh = setup.init_state()
  config.init_from.workdir = str(source)
  state, record = init_from.load(
      fresh, init_from=config.init_from,
      class_names=class_names or setup.class_names, tx=setup.tx)
  return fresh, state, record


def test_loads_every_matching_parameter(source_run, synthetic_data_dir):
  config = short_config(synthetic_data_dir, seed=1)
  fresh, state, record = loaded_state(config, source_run)
  source = flat(best_variables(source_run)["params"])
  loaded = flat(state.params)
  assert loaded.keys() == source.keys()
  for name, value in loaded.items():
    np.testing.assert_array_equal(value, source[name], err_msg=name)
    assert not np.array_equal(value, flat(fresh.params)[name]), name
  assert record["loaded"] == len(source) and record["skipped"] == []
  assert record["head_reinitialised"] is False
  # Momentum starts from zero, not from the source's optimizer state.
  assert all(not np.any(x) for x in jax.tree.leaves(state.opt_state)
             if np.ndim(x))


def test_other_class_names_reinitialise_the_head(source_run,
                                                 synthetic_data_dir, tmp_path):
  source = tmp_path / "relabelled"
  shutil.copytree(source_run, source)
  manifest = json.loads((source / "manifest.json").read_text())
  manifest["dataset"]["class_names"] = manifest["dataset"]["class_names"][::-1]
  (source / "manifest.json").write_text(json.dumps(manifest))
  fresh, state, record = loaded_state(short_config(synthetic_data_dir),
                                      source)
  theirs, ours, init = (flat(best_variables(source)["params"]),
                        flat(state.params), flat(fresh.params))
  for name, value in ours.items():
    expected = init[name] if name.startswith(f"{HEAD}/") else theirs[name]
    np.testing.assert_array_equal(value, expected, err_msg=name)
  assert record["head_reinitialised"] is True
  assert sorted(record["skipped"]) == [
      f"params/{HEAD}/bias: head re-initialised",
      f"params/{HEAD}/kernel: head re-initialised"]


def test_frozen_backbone_stays_bit_identical(frozen_run, source_run):
  workdir, source, _, _ = frozen_run
  theirs = flat(best_variables(source_run)["params"])
  trained = flat(final_params(workdir))
  for name, value in trained.items():
    if name.startswith(f"{HEAD}/"):
      assert not np.array_equal(value, theirs[name]), name
    else:
      np.testing.assert_array_equal(value, theirs[name], err_msg=name)
  record = json.loads((workdir / "manifest.json").read_text())["init_from"]
  assert record["workdir"] == str(source) and record["loaded"] == len(theirs)
  assert record["step"] == checkpoint_lib.Checkpoints(
      source / "checkpoints", read_only=True,
      best_metric="test/accuracy").best_step()


def test_lr_multiplier_zero_is_frozen(frozen_run, synthetic_data_dir,
                                      tmp_path):
  frozen_dir, _, config, _ = frozen_run
  config = config.copy_and_resolve_references()
  config.optimizer.frozen = ()
  config.optimizer.lr_multipliers = ((BACKBONE, 0.0),)
  loop.train_and_evaluate(config, tmp_path)
  zero, frozen = flat(final_params(tmp_path)), flat(final_params(frozen_dir))
  for name, value in zero.items():
    if name.startswith(f"{HEAD}/"):
      np.testing.assert_allclose(value, frozen[name], rtol=1e-5, atol=1e-6)
    else:
      np.testing.assert_array_equal(value, frozen[name], err_msg=name)


def test_resume_restores_its_own_state(frozen_run):
  """With the source gone, a resumed run must not need (or re-read) it."""
  workdir, source, config, results = frozen_run
  shutil.rmtree(source)
  assert loop.train_and_evaluate(config, workdir) == results
  manifest = json.loads((workdir / "manifest.json").read_text())
  assert len(manifest["sessions"]) == 2
  assert manifest["init_from"]["workdir"] == str(source)


@pytest.mark.parametrize("field,value,match", [
    ("optimizer.frozen", "('Conv_9/.*',)", r"optimizer.frozen.*'Conv_9/\.\*'"),
    ("optimizer.lr_multipliers", "(('Dense_1/kernl', 0.1),)",
     r"optimizer.lr_multipliers.*'Dense_1/kernl'")])
def test_unknown_pattern_is_an_error(synthetic_data_dir, tmp_path, field,
                                     value, match):
  config = short_config(synthetic_data_dir, **{field: value})
  with pytest.raises(ValueError, match=match):
    loop.train_and_evaluate(config, tmp_path)


def test_missing_source_is_an_error(source_run, synthetic_data_dir, tmp_path):
  config = short_config(synthetic_data_dir, **{
      "init_from.workdir": str(tmp_path / "nowhere")})
  with pytest.raises(FileNotFoundError, match="config.init_from.workdir"):
    loop.train_and_evaluate(config, tmp_path / "run")
  config.init_from.workdir = str(source_run)
  config.init_from.checkpoint = "999"
  with pytest.raises(FileNotFoundError,
                     match="config.init_from.checkpoint='999'.*step 999"):
    loop.train_and_evaluate(config, tmp_path / "run2")


@pytest.mark.parametrize("hold", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_frozen_batchnorm_keeps_its_statistics(synthetic_data_dir, tmp_path,
                                               hold):
  """BatchNorm_0 frozen: its running statistics stay put unless asked."""
  config = tiny_config(synthetic_data_dir, **{
      "input.train_split": "train[:128]", "num_epochs": 1,
      "evals": "{'test': {'split': 'test[:64]', 'tta': 'none'}}",
      "model.name": "vgg11_bn", "model.kwargs": "{'classifier_width': 16}",
      "optimizer.frozen": "('(Conv|BatchNorm)_0/.*',)",
      "optimizer.freeze_batch_stats": hold})
  setup = setup_lib.training(config,
                             loop.Parallel.from_config(config.parallel))
  initial = flat(setup.init_state().batch_stats)
  loop.train_and_evaluate(config, tmp_path)
  final = flat(best_variables(tmp_path)["batch_stats"])
  for name in ("BatchNorm_0/mean", "BatchNorm_0/var"):
    assert np.array_equal(final[name], initial[name]) == hold, name
  for name in ("BatchNorm_1/mean", "BatchNorm_1/var"):
    assert not np.array_equal(final[name], initial[name]), name
