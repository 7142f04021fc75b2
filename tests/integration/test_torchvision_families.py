"""torchvision's AlexNet and GoogLeNet as ``alexnet_tv`` / ``googlenet_tv``.

Random torchvision models (the real torchvision classes, not stand-ins) are
saved, converted with ``ferjax convert torchvision`` and must give
torchvision's logits within 1e-4. GoogLeNet at 224x224 takes minutes to
compile on the 2-core CPU, so its tests are ``slow``.
"""

import copy
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ferjax import cli  # noqa: E402
from ferjax import config as config_lib  # noqa: E402
from ferjax import config_checks
from ferjax.convert import torchvision as torchvision_convert  # noqa: E402
from ferjax.recognition.classifier import load_classifier  # noqa: E402
from ferjax.train import loop  # noqa: E402
from helpers import load_converted  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]


def _torchvision_models():
  """``torchvision.models``, or a skip when torchvision is not installed.

  PyPI's torchvision wheel is built against the CUDA build of torch; beside
  the CPU build its C++ extension does not load, and its import fails while
  registering fake kernels for those ops (``operator torchvision::nms does
  not exist``). The models use none of the ops, so the import is retried
  with that registration skipped.
  """
  try:
    import torchvision.models  # pylint: disable=g-import-not-at-top
    return torchvision.models
  except ImportError:
    pytest.skip("torchvision is not installed")
  except RuntimeError:
    for name in [n for n in sys.modules if n.startswith("torchvision")]:
      del sys.modules[name]
    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda *a, **k: (lambda f: f)
    try:
      import torchvision.models  # pylint: disable=g-import-not-at-top
    finally:
      torch.library.register_fake = register_fake
    return torchvision.models


def randomised(model: "torch.nn.Module", seed: int) -> "torch.nn.Module":
  """Weights giving logits of order 1 and BatchNorm far from identity."""
  torch.manual_seed(seed)
  for m in model.modules():
    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
      torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
      if m.bias is not None:
        m.bias.data.uniform_(-0.1, 0.1)
    if isinstance(m, torch.nn.BatchNorm2d):
      m.running_mean.uniform_(-0.5, 0.5)
      m.running_var.uniform_(0.5, 2.0)
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.uniform_(-0.5, 0.5)
    if isinstance(m, torch.nn.Dropout):
      m.p = 0.0
  return model


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  """name -> (torchvision model, converted run directory)."""
  models = _torchvision_models()
  out = {}
  for name, build in (
      ("alexnet", lambda: models.alexnet(weights=None)),
      ("googlenet", lambda: models.googlenet(
          weights=None, aux_logits=True, init_weights=False))):
    tmp = tmp_path_factory.mktemp(name)
    model = randomised(build(), seed=0)
    torch.save(model.state_dict(), tmp / f"{name}.pth")
    assert cli.main(["convert", "torchvision", str(tmp / f"{name}.pth"),
                     str(tmp / "run")]) == 0
    out[name] = (model, tmp / "run")
  return out


@pytest.mark.parametrize(
    "name", ["alexnet", pytest.param("googlenet", marks=pytest.mark.slow)])
def test_converted_logits_equal_torchvision(converted, name):
  torch_model, workdir = converted[name]
  model, variables, manifest = load_converted(workdir)
  assert model.__class__.__name__ == {
      "alexnet": "TorchvisionAlexNet", "googlenet": "TorchvisionGoogLeNet"}[
          name]
  assert manifest["converted_from"]["model"] == f"{name}_tv"
  x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(
      np.float32)
  with torch.no_grad():
    expected = torch_model.eval()(torch.from_numpy(x)).numpy()
  ours = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, x.transpose(0, 2, 3, 1))
  assert np.abs(expected).max() > 0.5
  np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_googlenet_training_outputs_and_aux_heads_equal_torchvision(
    converted):
  """Training mode: batch statistics, and both auxiliary heads' logits."""
  torch_model, workdir = converted["googlenet"]
  torch_model = copy.deepcopy(torch_model)  # Training moves its statistics.
  model, variables, _ = load_converted(workdir)
  model = model.clone(dropout=0.0, aux_dropout=0.0)
  x = np.random.default_rng(1).normal(size=(4, 3, 96, 96)).astype(np.float32)
  with torch.no_grad():
    logits, aux2, aux1 = torch_model.train()(torch.from_numpy(x))
  ours, new = model.apply(variables, x.transpose(0, 2, 3, 1), train=True,
                          mutable=["batch_stats", "aux_logits"])
  sown = new["aux_logits"]
  for a, b in ((ours, logits), (sown["aux1_logits"][0], aux1),
               (sown["aux2_logits"][0], aux2)):
    np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(
      new["batch_stats"]["conv1"]["bn"]["mean"],
      torch_model.conv1.bn.running_mean.numpy(), atol=1e-5)


@pytest.mark.slow
def test_googlenet_imagenet_normalisation_is_transform_input(converted):
  """torchvision feeds its ImageNet GoogLeNet through ``transform_input``;
  the converted run normalises as (x - 0.5) / 0.5, which is the same."""
  torch_model, workdir = converted["googlenet"]
  torch_model.transform_input = True
  try:
    crops = np.random.default_rng(2).integers(0, 256, (2, 224, 224, 3),
                                              dtype=np.uint8)
    x = (crops / 255.0 - torchvision_convert.IMAGENET_MEAN) / (
        torchvision_convert.IMAGENET_STD)
    with torch.no_grad():
      expected = torch.softmax(torch_model.eval()(torch.from_numpy(
          x.transpose(0, 3, 1, 2).astype(np.float32))), -1).numpy()
  finally:
    torch_model.transform_input = False
  np.testing.assert_allclose(load_classifier(str(workdir)).predict(crops),
                             expected, atol=1e-5)


@pytest.mark.slow
def test_googlenet_without_aux_heads(tmp_path):
  models = _torchvision_models()
  model = randomised(models.googlenet(weights=None, aux_logits=False,
                                      init_weights=False, num_classes=10), 1)
  torch.save(model.state_dict(), tmp_path / "g.pth")
  assert cli.main(["convert", "torchvision", str(tmp_path / "g.pth"),
                   str(tmp_path / "run")]) == 0
  ours, variables, _ = load_converted(tmp_path / "run")
  assert ours.aux_logits is False and "aux1" not in variables["params"]
  x = np.random.default_rng(3).normal(size=(1, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    expected = model.eval()(torch.from_numpy(x)).numpy()
  np.testing.assert_allclose(
      ours.apply(variables, x.transpose(0, 2, 3, 1)), expected, atol=1e-4,
      rtol=1e-4)


@pytest.mark.parametrize("name,edit,match", [
    ("googlenet", lambda s: s.pop("inception4b.branch3.1.bn.running_var"),
     "'inception4b.branch3.1.bn.running_var' missing"),
    ("googlenet", lambda s: s.__setitem__(
        "inception3a.branch3.1.conv.weight", torch.zeros(32, 16, 5, 5)),
     r"'inception3a.branch3.1.conv.weight' has shape \(32, 16, 5, 5\)"),
    ("alexnet", lambda s: s.pop("features.8.bias"),
     "'features.8.bias' missing"),
    ("alexnet", lambda s: s.__setitem__("extra.weight", torch.zeros(1)),
     "'extra.weight' is not part of torchvision's alexnet"),
])
def test_unusable_state_dict_names_file_and_key(tmp_path, name, edit, match):
  models = _torchvision_models()
  model = getattr(models, name)(weights=None, **(
      {"init_weights": False} if name == "googlenet" else {}))
  state = model.state_dict()
  edit(state)
  path = tmp_path / "edited.pth"
  torch.save(state, path)
  with pytest.raises(ValueError, match=match) as e:
    torchvision_convert.convert(path, tmp_path / "out")
  assert str(path) in str(e.value)
  assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_finetune_config_starts_from_a_converted_googlenet(
    converted, synthetic_data_dir, tmp_path):
  """fer2013_googlenet_finetune.py on synthetic_fer, shrunk to seconds."""
  _, source = converted["googlenet"]
  config = config_lib.load_config(
      f"{REPO / 'experiments' / 'fer2013_googlenet_finetune.py'}"
      f":source={source},runlocal")
  config = config_lib.apply_overrides(config, [
      "input.dataset=synthetic_fer", "input.builder_config=None",
      f"input.data_dir={synthetic_data_dir}", "input.train_split=train[:32]",
      "input.image_size=(32, 32)",
      "evals={'test': {'split': 'test[:32]', 'tta': 'none'}}",
      "checkpoint.best_metric=test/accuracy", "batch_size=16",
      "parallel.cpu_devices=None", "parallel.num_devices=1"])
  config_checks.validate(config)
  results = loop.train_and_evaluate(config, tmp_path)
  assert np.isfinite(results["test"]["loss"])
  record = json.loads((tmp_path / "manifest.json").read_text())["init_from"]
  assert record["head_reinitialised"] is True
  assert sorted(s.split(":")[0] for s in record["skipped"]) == [
      f"params/{head}/{leaf}" for head in ("aux1/fc2", "aux2/fc2", "fc")
      for leaf in ("bias", "kernel")]
