"""`ferjax convert torchvision`: a torchvision VGG as a ferjax run directory."""

import hashlib
import json
import pathlib
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers import (final_params, flat, load_converted, tiny_config)  # noqa: E402
from ferjax import cli  # noqa: E402  (after the skip on purpose)
from ferjax.convert import torchvision as torchvision_convert  # noqa: E402
from ferjax.recognition.classifier import load_classifier  # noqa: E402
from ferjax.train import loop  # noqa: E402
from twins import torch_vgg  # noqa: E402


# torchvision's vgg16 / vgg16_bn: positions of the Conv2d layers in features.
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGG16_BN_CONVS = (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40)


def random_vgg(depth: int, batch_norm: bool, seed: int = 0,
               **kwargs: object) -> "torch.nn.Module":
  """An eval-mode VGG with logits of order 1 and BatchNorm far from identity.

  torchvision's N(0, 0.01) classifier would give logits of order 1e-3, which
  an absolute tolerance of 1e-4 could not tell from wrong ones.
  """
  torch.manual_seed(seed)
  model = torch_vgg.VGG(depth, batch_norm, **kwargs)
  for m in model.modules():
    if isinstance(m, torch.nn.Linear):
      torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
      m.bias.data.uniform_(-0.1, 0.1)
    if isinstance(m, torch.nn.BatchNorm2d):
      m.running_mean.uniform_(-0.5, 0.5)
      m.running_var.uniform_(0.5, 2.0)
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.uniform_(-0.5, 0.5)
      m.num_batches_tracked.fill_(100)
  return model.eval()


def convert(model: "torch.nn.Module", tmp: pathlib.Path) -> pathlib.Path:
  """Saves ``model``'s state dict and converts it through the CLI."""
  pth, out = tmp / "model.pth", tmp / "converted"
  torch.save(model.state_dict(), pth)
  assert cli.main(["convert", "torchvision", str(pth), str(out)]) == 0
  return out


@pytest.fixture(scope="module")
def vgg11_bn(tmp_path_factory):
  """torchvision's vgg11_bn shapes (1000 classes, 4096 wide), converted."""
  model = random_vgg(11, True)
  return model, convert(model, tmp_path_factory.mktemp("vgg11_bn"))


def test_reference_model_has_torchvision_keys():
  for batch_norm, convs in ((False, VGG16_CONVS), (True, VGG16_BN_CONVS)):
    keys = list(torch_vgg.VGG(16, batch_norm, classifier_width=8).state_dict())
    expected = []
    for i in convs:
      expected += [f"features.{i}.weight", f"features.{i}.bias"]
      if batch_norm:
        expected += [f"features.{i + 1}.{leaf}" for leaf in (
            "weight", "bias", "running_mean", "running_var",
            "num_batches_tracked")]
    expected += [f"classifier.{i}.{leaf}" for i in (0, 3, 6)
                 for leaf in ("weight", "bias")]
    assert keys == expected


@pytest.mark.parametrize("depth,batch_norm,kwargs", [
    (11, True, None), (11, False, {"classifier_width": 64})])
def test_converted_logits_equal_pytorch(vgg11_bn, tmp_path, depth,
                                        batch_norm, kwargs):
  if kwargs is None:
    torch_model, workdir = vgg11_bn
  else:
    torch_model = random_vgg(depth, batch_norm, seed=1, **kwargs)
    workdir = convert(torch_model, tmp_path)
  model, variables, manifest = load_converted(workdir)
  assert model.depth == depth and model.batch_norm == batch_norm
  x = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
  with torch.no_grad():
    expected = torch_model(torch.from_numpy(x)).numpy()
  ours = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      variables, x.transpose(0, 2, 3, 1))
  assert np.abs(expected).max() > 0.5  # Non-trivial logits to compare.
  np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=1e-4)
  pth = workdir.parent / "model.pth"
  source = manifest["converted_from"]
  assert source["sha256"] == hashlib.sha256(pth.read_bytes()).hexdigest()
  assert source["path"] == str(pth) and source["model"] == model_name(
      depth, batch_norm)
  assert manifest["dataset"]["class_names"][:2] == ["imagenet_000",
                                                    "imagenet_001"]


def model_name(depth: int, batch_norm: bool) -> str:
  return f"vgg{depth}{'_bn' if batch_norm else ''}"


def test_predict_reads_the_converted_run(vgg11_bn):
  """`ferjax predict`'s classifier: ImageNet preprocessing, same softmax."""
  torch_model, workdir = vgg11_bn
  crops = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3),
                                            dtype=np.uint8)
  x = (crops / 255.0 - torchvision_convert.IMAGENET_MEAN) / (
      torchvision_convert.IMAGENET_STD)
  with torch.no_grad():
    expected = torch.softmax(torch_model(torch.from_numpy(
        x.transpose(0, 3, 1, 2).astype(np.float32))), -1).numpy()
  np.testing.assert_allclose(load_classifier(str(workdir)).predict(crops),
                             expected, atol=1e-5)


def test_init_from_a_converted_run_loads_the_convolutions(
    vgg11_bn, synthetic_data_dir, tmp_path):
  """At 32x32 Dense_0 has another shape; the 1000-way head is replaced."""
  _, source = vgg11_bn
  config = tiny_config(synthetic_data_dir, **{
      "model.name": "vgg11_bn", "input.train_split": "train[:64]",
      "evals": "{'test': {'split': 'test[:64]', 'tta': 'none'}}",
      "num_epochs": 1, "batch_size": 32, "parallel.num_devices": 1,
      "init_from.workdir": str(source),
      "optimizer.frozen": "('(Conv|BatchNorm)_.*',)"})
  loop.train_and_evaluate(config, tmp_path)
  record = json.loads((tmp_path / "manifest.json").read_text())["init_from"]
  convs = [n for n in flat(load_converted(source)[1]["params"])
           if n.startswith(("Conv_", "BatchNorm_"))]
  assert record["loaded"] == len(convs) + 2 + 2 * 8  # + Dense_1, BN stats.
  assert record["head_reinitialised"] is True
  assert sorted(s.split(":")[0] for s in record["skipped"]) == [
      "params/Dense_0/bias", "params/Dense_0/kernel", "params/Dense_2/bias",
      "params/Dense_2/kernel"]
  theirs = flat(load_converted(source)[1]["params"])
  trained = flat(final_params(tmp_path))
  for name in convs:  # Frozen while training: still the converted values.
    np.testing.assert_array_equal(trained[name], theirs[name], err_msg=name)


def state_dict_file(tmp_path: pathlib.Path, edit) -> pathlib.Path:
  state = random_vgg(11, False, classifier_width=16).state_dict()
  edit(state)
  path = tmp_path / "edited.pth"
  torch.save(state, path)
  return path


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.pop("classifier.6.weight"), "'classifier.6.weight' missing"),
    (lambda s: s.pop("features.3.bias"), "'features.3.bias' missing"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("features.18")],
     r"7 convolutions in 'features' \(the last is 'features.16.weight'\)"),
    (lambda s: s.__setitem__("features.3.weight", torch.zeros(128, 32, 3, 3)),
     r"'features.3.weight' has shape \(128, 32, 3, 3\).*\(128, 64, 3, 3\)"),
    (lambda s: s["features.3.weight"].view(-1)[7].fill_(float("nan")),
     "'features.3.weight' holds non-finite values"),
    (lambda s: s["classifier.6.bias"].fill_(float("inf")),
     "'classifier.6.bias' holds non-finite values"),
    (lambda s: s.__setitem__("fc.weight", torch.zeros(2, 2)),
     "'fc.weight' is not part of torchvision's vgg11"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("features")],
     "not a torchvision VGG state dict: no convolution key "
     "'features.0.weight'"),
])
def test_unusable_state_dict_names_file_and_key(tmp_path, edit, match):
  path = state_dict_file(tmp_path, edit)
  with pytest.raises(ValueError, match=match) as e:
    torchvision_convert.convert(path, tmp_path / "out")
  assert str(path) in str(e.value)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["edited.pth"]


def test_cli_refuses_truncated_file_and_existing_output(tmp_path, capsys):
  whole = state_dict_file(tmp_path, lambda s: None)
  cut = tmp_path / "cut.pth"
  cut.write_bytes(whole.read_bytes()[:100_000])
  assert cli.main(["convert", "torchvision", str(cut),
                   str(tmp_path / "a")]) == 2
  assert f"{cut}: not a readable PyTorch state dict" in capsys.readouterr().err
  (tmp_path / "b").mkdir()
  (tmp_path / "b" / "keep.txt").write_text("mine")
  assert cli.main(["convert", "torchvision", str(whole),
                   str(tmp_path / "b")]) == 2
  assert "already exists" in capsys.readouterr().err
  assert [p.name for p in (tmp_path / "b").iterdir()] == ["keep.txt"]
  assert not (tmp_path / "a").exists()


def _not_a_checkpoint(path: pathlib.Path, kind: str) -> pathlib.Path:
  if kind == "whole_model":  # torch.save(model), not its state_dict.
    torch.save(torch.nn.Linear(2, 2), path)
  elif kind == "text":
    path.write_text("hello\n" * 10)
  elif kind == "random":
    path.write_bytes(np.random.default_rng(0).bytes(5000))
  else:
    import zipfile  # pylint: disable=g-import-not-at-top
    with zipfile.ZipFile(path, "w") as archive:
      archive.writestr("a.txt", "not torch")
  return path


@pytest.mark.parametrize("kind,reason", [
    ("whole_model", "Unsupported global: GLOBAL torch.nn.modules.linear."
     "Linear was not an allowed global by default"),
    ("text", "KeyError: "), ("random", "Unsupported operand "),
    ("zip", "RuntimeError: file in archive is not in a subdirectory: a.txt"),
])
def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys, kind,
                                                     reason):
  path = _not_a_checkpoint(tmp_path / "x.pth", kind)
  assert cli.main(["convert", "torchvision", str(path),
                   str(tmp_path / "out")]) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"ferjax convert torchvision: error: {path}: not a "
                        "readable PyTorch state dict"), err
  assert reason in err and len(err.splitlines()) == 1 and len(err) < 400, err
  assert not (tmp_path / "out").exists()


def test_missing_torch_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)
  with pytest.raises(ImportError, match="pip install torch"):
    torchvision_convert.read_state_dict(tmp_path / "any.pth")
