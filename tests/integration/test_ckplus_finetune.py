"""The CK+ fine-tuning experiments: every fold imports the same source run."""

import hashlib
import json
import pathlib

import jax
import jax.numpy as jnp
import pytest

from ferjax import config as config_lib
from ferjax import config_checks
from ferjax.models import create_model
from ferjax.train import crossval
from ferjax.train import loop
from ferjax.train import optimizer as optimizer_lib
from helpers import short_config, write_ck_plus

REPO = pathlib.Path(__file__).resolve().parents[2]


def digest(directory: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()
                                                         ).hexdigest()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def test_lenet_finetune_runlocal_imports_the_source_in_every_fold(
    synthetic_data_dir, tmp_path):
  source = tmp_path / "source"
  loop.train_and_evaluate(short_config(synthetic_data_dir), str(source))
  before = digest(source)
  write_ck_plus(tmp_path / "CK+48")
  config = config_lib.load_config(
      f"{REPO / 'experiments/ckplus_lenet_finetune.py'}:runlocal,"
      f"source={source}")
  config = config_lib.apply_overrides(config, [
      f"input.manual_dir={tmp_path / 'CK+48'}",
      f"input.data_dir={tmp_path / 'tfds'}", "num_epochs=1", "batch_size=8",
      "parallel.cpu_devices=None", "parallel.num_devices=1"])
  summary = crossval.run_folds(config, str(tmp_path / "cv"))

  assert summary["folds"] == 3
  records = [json.loads((tmp_path / "cv" / f"fold_{i}" / "manifest.json"
                         ).read_text())["init_from"] for i in range(3)]
  for record in records:
    assert record["workdir"] == str(source)
    # Both convolutions and Dense_0; the head is CK+'s own.
    assert record["loaded"] == 6 and record["head_reinitialised"] is True
  assert len({r["step"] for r in records}) == 1
  assert digest(source) == before  # The source is only read.


def test_finetune_configs_need_a_source():
  for name in ("ckplus_lenet_finetune.py", "ckplus_vgg_finetune.py"):
    with pytest.raises(config_lib.ConfigError, match="'source'.*required"):
      config_lib.load_config(str(REPO / "experiments" / name))


@pytest.mark.parametrize("depth,bn,freeze,frozen_convs", [
    (16, True, 2, 4), (11, False, 3, 4), (19, True, 0, 0)])
def test_vgg_finetune_freezes_whole_stages(depth, bn, freeze, frozen_convs):
  config = config_lib.load_config(
      f"{REPO / 'experiments/ckplus_vgg_finetune.py'}:source=runs/x,"
      f"depth={depth},bn={bn},freeze={freeze}")
  config_checks.validate(config)
  model = create_model(config.model.name, num_classes=7)
  params = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, *config.input.image_size,
                                        config.input.channels))))["params"]
  matched = optimizer_lib.match_patterns(params, config.optimizer.frozen,
                                         "optimizer.frozen")
  frozen = {name.split("/")[0] for name, i in zip(
      [optimizer_lib.path_name(p) for p, _ in
       jax.tree_util.tree_flatten_with_path(params)[0]],
      jax.tree.leaves(matched)) if i >= 0}
  expected = {f"Conv_{i}" for i in range(frozen_convs)}
  if bn:
    expected |= {f"BatchNorm_{i}" for i in range(frozen_convs)}
  assert frozen == expected
