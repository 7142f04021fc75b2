"""Fusion of hand-crafted features with CNNs: parameters, gradients, the CLI."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ferjax import cli
from ferjax import config as config_lib
from ferjax import config_checks
from ferjax import features
from ferjax.models import create_model
from ferjax.models import fusion
from ferjax.models import summary
from ferjax.run.run_dir import read_metrics

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "experiments" / "quickstart.py")
PHOTOS = REPO.parent / "shared" / "data" / "photos"
SHAPE = (32, 32, 3)


def _fusion(feats: tuple[str, ...], mode: str) -> dict:
  base = config_lib.base_config().model.fusion.to_dict()
  base.update(features=feats, mode=mode)
  base["lbp"]["grid"] = base["gabor"]["grid"] = (4, 4)
  return base


def _count(variables: dict) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))


def _init(model, shape=SHAPE):
  return model.init(jax.random.key(0), jnp.zeros((2, *shape)))


@pytest.mark.parametrize("feats", [("lbp",), ("gabor",), ("lbp", "gabor")])
def test_late_fusion_adds_exactly_its_head(feats):
  spec = fusion.FusionSpec.from_config(_fusion(feats, "late"))
  cnn = _count(_init(create_model("lenet5", num_classes=7)))
  fused = _init(create_model("lenet5", num_classes=7,
                             fusion=_fusion(feats, "late")))
  width = spec.width
  dim = 16 * (("lbp" in feats) * features.num_codes(8, "uniform")
              + ("gabor" in feats) * spec.gabor.num_filters)
  head = dim * width + width + width * 7  # Dense(width); bias-free classifier.
  assert _count(fused) == cnn + head
  assert set(fused["params"]) == {"backbone", "fusion_dense",
                                  "fusion_classifier"}


@pytest.mark.parametrize("name", ["lenet5", "vgg11_bn"])
@pytest.mark.parametrize("feats", [("lbp",), ("gabor",), ("lbp", "gabor")])
def test_early_fusion_only_widens_the_first_layer(name, feats):
  spec = fusion.FusionSpec.from_config(_fusion(feats, "early"))
  extra = fusion.extra_channels(spec)
  assert extra == ("lbp" in feats) + 8 * ("gabor" in feats)
  shape = (32, 32, 1)
  kwargs = {"classifier_width": 16} if name.startswith("vgg") else {}
  widened = jax.eval_shape(
      lambda: _init(create_model(name, num_classes=7, **kwargs),
                    (32, 32, 1 + extra)))
  fused = jax.eval_shape(lambda: _init(create_model(
      name, num_classes=7, fusion=_fusion(feats, "early"), **kwargs), shape))
  assert _count(fused) == _count(widened)
  assert set(fused["params"]) == {"backbone"}
  assert jax.tree.map(lambda a: a.shape, fused["params"]["backbone"]) == (
      jax.tree.map(lambda a: a.shape, widened["params"]))


@pytest.mark.parametrize("mode", ["early", "late"])
def test_input_gradients_flow_but_filters_are_not_parameters(mode):
  config = _fusion(("lbp", "gabor"), mode)
  model = create_model("lenet5", num_classes=7, fusion=config)
  variables = _init(model)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, *SHAPE)),
                  jnp.float32)
  labels = jnp.arange(4) % 7

  def loss(params, x):
    logits = model.apply({**variables, "params": params}, x)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, labels).mean()

  grad_params, grad_x = jax.grad(loss, argnums=(0, 1))(variables["params"], x)
  assert np.isfinite(np.asarray(grad_x)).all()
  assert float(jnp.abs(grad_x).sum()) > 0
  leaves = jax.tree.leaves(grad_params)
  assert all(np.isfinite(np.asarray(g)).all() for g in leaves)
  # No parameter is a Gabor kernel (or any constant of the feature bank).
  bank = fusion.FusionSpec.from_config(config).gabor
  bank_shape = (bank.ksize, bank.ksize, 1, 2 * bank.num_filters)
  assert all(p.shape != bank_shape for p in jax.tree.leaves(variables))
  if mode == "late":
    assert float(jnp.abs(grad_params["fusion_dense"]["kernel"]).sum()) > 0
  else:  # The LBP and Gabor input channels reach the first convolution.
    kernel_grad = grad_params["backbone"]["Conv_0"]["kernel"]
    assert kernel_grad.shape[2] == 3 + 1 + bank.num_filters
    assert (np.abs(np.asarray(kernel_grad[:, :, 3:])).sum((0, 1, 3)) > 0).all()


@pytest.mark.parametrize("standardize", [True, False])
def test_late_head_standardises_the_descriptor_per_element(standardize):
  """Train: the batch's statistics (and the running ones updated); eval: the
  running ones, a fixed affine map. Off (runs before the field): raw input."""
  config = {**_fusion(("lbp", "gabor"), "late"), "standardize": standardize}
  model = create_model("lenet5", num_classes=7, fusion=config)
  variables = _init(model)
  x = jnp.asarray(np.random.default_rng(2).normal(size=(8, *SHAPE)),
                  jnp.float32)
  d = fusion.descriptor(x, fusion.FusionSpec.from_config(config))
  params = variables["params"]
  backbone = create_model("lenet5", num_classes=7).apply(
      {"params": params["backbone"]}, x)

  def logits(h):
    dense = params["fusion_dense"]
    hidden = jax.nn.relu(h @ dense["kernel"] + dense["bias"])
    return backbone + hidden @ params["fusion_classifier"]["kernel"]

  if not standardize:
    assert "batch_stats" not in variables
    np.testing.assert_allclose(model.apply(variables, x), logits(d),
                               rtol=1e-4, atol=1e-4)
    return
  assert set(params) == {"backbone", "fusion_dense", "fusion_classifier"}
  _, updates = model.apply(variables, x, train=True, rngs={
      "dropout": jax.random.key(1)}, mutable=["batch_stats"])
  stats = updates["batch_stats"]["fusion_standardize"]
  np.testing.assert_allclose(stats["mean"], 0.1 * d.mean(0), rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * d.var(0),
                             rtol=1e-4)
  evaluated = model.apply({**variables, **updates}, x)
  want = logits((d - stats["mean"]) / jnp.sqrt(stats["var"] + 1e-5))
  np.testing.assert_allclose(evaluated, want, rtol=1e-4, atol=1e-4)
  assert not np.allclose(evaluated, logits(d), atol=1e-3)


def test_lbp_linear_is_the_standardised_descriptor_and_one_dense():
  config = _fusion((), "late")
  model = create_model("lbp_linear", num_classes=7, fusion=config)
  variables = _init(model)
  assert jax.tree.map(lambda a: a.shape, variables["params"]) == {
      "Dense_0": {"kernel": (16 * 10, 7), "bias": (7,)}}
  x = jnp.asarray(np.random.default_rng(1).normal(size=(8, *SHAPE)),
                  jnp.float32)
  spec = fusion.FusionSpec(features=("lbp",),
                           lbp=fusion.FusionSpec.from_config(config).lbp)
  descriptor = fusion.descriptor(x, spec)
  dense = variables["params"]["Dense_0"]
  # Training standardises with the batch's statistics and updates the
  # running ones, which evaluation then uses: one affine map.
  logits, updates = model.apply(variables, x, train=True,
                                mutable=["batch_stats"])
  mean, var = descriptor.mean(0), descriptor.var(0)
  want = (descriptor - mean) / jnp.sqrt(var + 1e-5) @ dense["kernel"] + dense[
      "bias"]
  np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)
  stats = updates["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(stats["mean"], 0.1 * mean, rtol=1e-5, atol=1e-7)
  evaluated = model.apply({**variables, **updates}, x)
  want = (descriptor - stats["mean"]) / jnp.sqrt(
      stats["var"] + 1e-5) @ dense["kernel"] + dense["bias"]
  np.testing.assert_allclose(evaluated, want, rtol=1e-4, atol=1e-4)


def test_models_summary_counts_what_fusion_adds():
  plain = summary.model_summary("lenet5", SHAPE, 7)
  late = summary.model_summary("lenet5", SHAPE, 7,
                               fusion=_fusion(("lbp",), "late"))
  assert late["params"] - plain["params"] == 160 * 64 + 64 + 64 * 7
  assert late["flops"] > plain["flops"]
  table = summary.format_models_table([{**plain, "fused": late}])
  assert f"+{160 * 64 + 64 + 64 * 7:,}" in table


def _validated(*overrides: str):
  config = config_lib.apply_overrides(config_lib.load_config(QUICKSTART),
                                      overrides)
  config_checks.validate(config)


@pytest.mark.parametrize("overrides,field,expected", [
    (["model.fusion.features=('lbp', 'hog')"], "model.fusion.features",
     "lbp, gabor"),
    (["model.fusion.features=('lbp',)", "model.fusion.mode=middle"],
     "model.fusion.mode", "early, late"),
    (["model.fusion.standardize=None"], "model.fusion.standardize",
     "True or False"),
    (["model.fusion.features=('lbp',)", "model.fusion.lbp.radius=16.0"],
     "model.fusion.lbp.radius", "fits the 32x32 input"),
    (["model.fusion.features=('lbp',)", "model.fusion.lbp.grid=(40, 4)"],
     "model.fusion.lbp.grid", "at most 32x32"),
    (["model.fusion.features=('lbp',)", "model.fusion.lbp.method=var"],
     "model.fusion.lbp.method", "uniform, nri_uniform"),
    (["model.fusion.features=('lbp',)", "model.fusion.lbp.points=16",
      "model.fusion.lbp.method=default"], "model.fusion.lbp.method",
     "at most 256 histogram bins"),
    (["model.fusion.features=('gabor',)", "model.fusion.gabor.ksize=40"],
     "model.fusion.gabor.ksize", "fits the 32x32 input"),
    (["model.fusion.features=('gabor',)",
      "model.fusion.gabor.wavelengths=(4.0,)"],
     "model.fusion.gabor.wavelengths", "one number > 0 per sigma"),
    (["model.name=lbp_linear", "model.fusion.features=('lbp',)"],
     "model.fusion.features", "no CNN"),
    (["model.name=lbp_linear", "model.fusion.lbp.grid=(33, 2)"],
     "model.fusion.lbp.grid", "at most 32x32"),
])
def test_bad_fusion_config_names_the_field(overrides, field, expected):
  with pytest.raises(config_lib.ConfigError) as e:
    _validated(*overrides)
  assert f"config.{field}:" in str(e.value)
  assert expected in str(e.value)


def test_good_fusion_configs_validate():
  _validated("model.fusion.features=('lbp', 'gabor')",
             "model.fusion.mode=early", "model.fusion.lbp.grid=(4, 4)")
  for arg in ("features=lbp,mode=late", "features=gabor,mode=early",
              "features=lbp+gabor,mode=late", "model=lbp_linear",
              "model=vgg11_bn,features=lbp+gabor,mode=early"):
    config_checks.validate(config_lib.load_config(
        f"{REPO / 'experiments/fer2013_fusion.py'}:{arg}"))
  config_checks.validate(config_lib.load_config(
      f"{REPO / 'experiments/ckplus_fusion.py'}:features=lbp,mode=late"))


def test_runs_recorded_before_fusion_existed_have_the_same_config():
  config = config_lib.load_config(QUICKSTART).to_dict()
  older = {**config, "model": {k: v for k, v in config["model"].items()
                               if k != "fusion"}}
  upgraded, added = config_lib.upgrade(older)
  assert "model.fusion.features" in added
  # Without features the late head, standardised or not, does not exist.
  assert config_lib.differing_fields(upgraded, config) == [
      "model.fusion.standardize"]
  assert added["model.fusion.standardize"] is False
  fused = config_lib.apply_overrides(config_lib.load_config(QUICKSTART), [
      "model.fusion.features=('lbp',)"]).to_dict()
  assert config_lib.differing_fields(upgraded, fused) == [
      "model.fusion.features", "model.fusion.standardize"]


def test_cli_refuses_bad_fusion_before_any_work(tmp_path, capsys):
  code = cli.main(["train", "--config", QUICKSTART, "--workdir",
                   str(tmp_path / "run"),
                   "--config.model.fusion.features=('lbp', 'sift')"])
  err = capsys.readouterr().err
  assert code == 2
  assert "config.model.fusion.features" in err and "Traceback" not in err
  assert not (tmp_path / "run").exists()


def _train_quickstart(workdir, data_dir, *overrides: str) -> int:
  """`ferjax train` of the quickstart on the synthetic set, one device,
  batch 32, evaluated on test[:64], with ``overrides``."""
  return cli.main([
      "train", "--config", QUICKSTART, "--workdir", str(workdir), *overrides,
      f"--config.input.data_dir={data_dir}",
      "--config.evals={'test': {'split': 'test[:64]', 'tta': 'none'}}",
      "--config.batch_size=32", "--config.parallel.cpu_devices=None",
      "--config.parallel.num_devices=1"])


def test_late_fusion_lenet_trains_and_predicts(synthetic_data_dir, tmp_path,
                                               capsys):
  """`ferjax train` with late LBP fusion, then `ferjax predict` with it."""
  workdir = tmp_path / "run"
  code = _train_quickstart(
      workdir, synthetic_data_dir, "--config.model.fusion.features=('lbp',)",
      "--config.model.fusion.mode=late",
      "--config.model.fusion.lbp.grid=(4, 4)",
      "--config.input.train_split=train[:256]", "--config.num_epochs=4",
      "--config.log_every_steps=4")
  assert code == 0, capsys.readouterr().err[-2000:]
  losses = [e["loss"] for e in read_metrics(workdir) if e["split"] == "train"]
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.8 * losses[0], losses
  if not PHOTOS.is_dir():
    pytest.skip(f"{PHOTOS} not present")
  capsys.readouterr()
  code = cli.main(["predict", "--workdir", str(workdir), "--detector", "haar",
                   str(PHOTOS / "faces")])
  records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert code == 0
  assert len(records) == len(list((PHOTOS / "faces").iterdir()))
  class_names = json.loads((workdir / "manifest.json").read_text())[
      "dataset"]["class_names"]
  labels = [face["label"] for r in records for face in r["faces"]]
  assert labels and all(label in class_names for label in labels)


def test_late_fusion_runs_from_before_standardize_evaluate_unchanged(
    synthetic_data_dir, tmp_path, capsys):
  """A late-fusion run whose config.json has no ``standardize`` (what the
  ferjax before it wrote: an unstandardised head, no batch_stats) restores
  and evaluates to the numbers it logged."""
  workdir = tmp_path / "run"
  code = _train_quickstart(
      workdir, synthetic_data_dir,
      "--config.model.fusion.features=('lbp', 'gabor')",
      "--config.model.fusion.standardize=False",
      "--config.model.fusion.lbp.grid=(4, 4)",
      "--config.model.fusion.gabor.grid=(4, 4)",
      "--config.input.train_split=train[:64]", "--config.num_epochs=1")
  assert code == 0, capsys.readouterr().err[-2000:]
  saved = json.loads((workdir / "config.json").read_text())
  del saved["model"]["fusion"]["standardize"]
  (workdir / "config.json").write_text(json.dumps(saved))
  logged = [e for e in read_metrics(workdir) if e["split"] == "test"][-1]
  capsys.readouterr()
  assert cli.main(["eval", "--workdir", str(workdir), "--checkpoint",
                   "latest", "--json"]) == 0
  result = json.loads(capsys.readouterr().out)["results"]["test"]
  assert result["loss"] == pytest.approx(logged["loss"], rel=1e-5)
  assert result["confusion_matrix"] == logged["confusion_matrix"]
