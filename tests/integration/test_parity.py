"""Step parity with PyTorch: every family, its recipe's SGD and schedules.

Each family trains with ferjax's own train step and with its PyTorch twin
(``benchmarks/twins/torch_models.py``) from the same weights on the same batches,
dropout 0, BatchNorm in training mode, the experiment config's SGD
(momentum, Nesterov, coupled weight decay) and schedule. These checks catch
porting bugs (BatchNorm momentum, LRN constants, padding, flatten order,
auxiliary loss weights, where weight decay enters): the report of issue 15
shows each failing on a deliberately broken port. A third run, PyTorch
from weights one float32 ulp away, measures how far rounding alone moves a
trajectory. Tolerances, measured on the development CPU (XLA:CPU against
oneDNN, float32), with the recipes' learning rates x0.01 (``LR_SCALE``):

* per-step loss: 1e-4 relative over the first 5 steps (measured 5e-8 to
  2e-6), and over all 20 within 5e-3 or 10x PyTorch's own one-ulp
  divergence: once a max-pool or ReLU decision falls within rounding of a
  tie, no two float32 runs agree (``STRICT_STEPS``);
* parameters and BatchNorm statistics after 20 steps: 1e-4 of each
  tensor's largest magnitude (at least 0.01) plus 10x PyTorch's own
  divergence (VGG-11's first bias, ~1e-5 after 20 steps, differs by 1e-3 of
  itself after its flips); torch's
  running variance is compared in ferjax's biased convention (``unbias``);
* evaluation logits of ferjax's final weights, in ferjax and in the twin:
  1e-4;
* schedules: the same learning rate at every step.

Over 100 steps no fixed tolerance means anything for the families with such
flips; ``benchmarks/README.md`` has the measured one-ulp divergence.

Inputs are 32x32, batches of 8 and the classifiers 64 wide; each step sees new random examples so
that no loss collapses towards 0 (where relative errors mean nothing).
"""

import copy
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO = pathlib.Path(__file__).resolve().parents[2]

from ferjax import config as config_lib  # noqa: E402
import side_by_side  # noqa: E402  pylint: disable=g-import-not-at-top

torch.set_num_threads(1)
BATCH = 8
NUM_CLASSES = 7
STEPS = 20
# The recipes' rates scaled down (momentum, Nesterov, weight decay and
# schedule unchanged): at the full rate GoogLeNet and AlexNet blow up in the
# first steps (issue 21), where float32 rounding alone decides the result.
LR_SCALE = 0.01
# Past a discrete flip (a max-pool or ReLU decision within rounding of a
# tie) no two float32 runs agree, and where the flip falls depends even on
# XLA's thread partition. Measured: AlexNet's ferjax-torch loss gap is
# 5e-7..1e-5 up to step 11, then 3.2e-4..1.3e-3 (PyTorch against itself one
# ulp apart: 2.5e-4); VGG-11-BN's reaches 1.8e-4 within 20 steps in one
# device layout and stays under 1e-4 in another. So the 1e-4 is
# asserted over the first STRICT_STEPS steps, where every porting bug tried
# shows (aux weight, flatten order, LRN constant: step 0), and all 20 steps
# within AFTER_FLIP or SELF_FACTOR x PyTorch's own one-ulp divergence.
STRICT_STEPS = 5
AFTER_FLIP = 5e-3
SELF_FACTOR = 10.0
# name -> (input shape, model kwargs, experiment config with the recipe)
FAMILIES = {
    "lenet5": ((32, 32, 3), {}, "fer2013_lenet.py"),
    "alexnet": ((32, 32, 1), {"dropout": 0.0, "classifier_width": 64},
                "fer2013_alexnet.py:bn=False"),
    "alexnet_bn": ((32, 32, 1), {"dropout": 0.0, "classifier_width": 64},
                   "fer2013_alexnet.py"),
    "vgg11_bn": ((32, 32, 1), {"dropout": 0.0, "classifier_width": 64},
                 "fer2013_vgg.py:depth=11,bn=True"),
    "vgg11": ((32, 32, 1), {"dropout": 0.0, "classifier_width": 64},
              "fer2013_vgg.py:depth=11,bn=False"),
    "googlenet": ((32, 32, 1), {"dropout": 0.0, "aux_dropout": 0.0},
                  "fer2013_googlenet.py:bn=False"),
    "googlenet_bn": ((32, 32, 1), {"dropout": 0.0, "aux_dropout": 0.0},
                     "fer2013_googlenet.py"),
    # The default model's family; the small widths keep the test short.
    "resnet_fer_small": ((32, 32, 1), {"dropout": 0.0}, "fer2013_resnet.py"),
}


# LeNet-5 and the small ResNet run by default; the larger families take a minute or more each
# on the 2-core CPU (mostly compiling) and run with -m slow.
CHECKED = [name if name in ("lenet5", "resnet_fer_small") else pytest.param(
    name, marks=pytest.mark.slow) for name in FAMILIES]


def recipe(name: str, lr_scale: float = 1.0):
  opt = config_lib.load_config(str(REPO / "experiments" /
                                   FAMILIES[name][2])).optimizer
  opt.learning_rate *= lr_scale
  return opt


def train_both(name: str, steps: int, lr_scale: float = LR_SCALE) -> dict:
  """Both frameworks for ``steps`` steps: losses, lrs and final weights.

  A third run, PyTorch from weights one float32 ulp away, measures how far
  float32 rounding alone moves the trajectory (``self``).
  """
  shape, kwargs, _ = FAMILIES[name]
  rng = np.random.default_rng(0)
  n = BATCH * steps
  data = side_by_side.Data(
      rng.integers(0, 256, (n, *shape), dtype=np.uint8),
      rng.integers(0, NUM_CLASSES, n), (0.5,) * shape[2], (0.25,) * shape[2])
  variables = side_by_side.initial_variables(
      name, kwargs, num_classes=NUM_CLASSES, input_shape=shape, seed=0)
  common = dict(num_classes=NUM_CLASSES, steps_per_epoch=steps // 4,
                total_steps=steps, variables=variables)
  opt = recipe(name, lr_scale)
  ours = side_by_side.FerjaxSide(name, kwargs, opt, data, batch=BATCH,
                                 **common)
  theirs = side_by_side.TorchSide(name, opt, data, **common)
  shaken = side_by_side.TorchSide(name, opt, data, perturb=1, **common)
  history = {"ferjax": [], "torch": [], "self": []}
  for rows in side_by_side.steps_for(steps, BATCH, n):
    history["ferjax"].append(ours.step(rows))
    history["torch"].append(theirs.step(rows))
    history["self"].append(shaken.step(rows))
  return {"history": history, "ferjax": ours, "torch": theirs,
          "self": shaken, "eval_images": data.images[:BATCH]}


def loss_gaps(history: dict) -> tuple[np.ndarray, np.ndarray]:
  """Per step: |ferjax - torch| and the running maximum of |torch - self|,
  both relative to torch's loss."""
  theirs = np.array([m["loss"] for m in history["torch"]])
  gap = np.abs(np.array([m["loss"] for m in history["ferjax"]]) - theirs)
  own = np.abs(np.array([m["loss"] for m in history["self"]]) - theirs)
  return gap / theirs, np.maximum.accumulate(own / theirs)


_RUNS: dict[tuple[str, int], dict] = {}


def trained(name: str, steps: int = STEPS) -> dict:
  """``train_both``, once per session and family."""
  if (name, steps) not in _RUNS:
    _RUNS[name, steps] = train_both(name, steps)
  return _RUNS[name, steps]


def flat(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flat(value, f"{prefix}{key}/"))
    else:
      out[f"{prefix}{key}"] = np.asarray(value)
  return out


@pytest.mark.parametrize("name", CHECKED)
def test_losses_and_learning_rates_match_for_20_steps(name):
  history = trained(name)["history"]
  assert min(m["loss"] for m in history["torch"]) > 0.1  # Away from 0.
  gap, own = loss_gaps(history)
  # GoogLeNet-BN at 32x32 normalises 2x2 maps: PyTorch one ulp away from
  # itself moves 7e-5 by step 2, so the strict bound admits that noise too.
  assert np.all(gap[:STRICT_STEPS] <= np.maximum(
      1e-4, SELF_FACTOR * own[:STRICT_STEPS])), (gap, own)
  assert np.all(gap <= np.maximum(AFTER_FLIP, SELF_FACTOR * own)), (gap, own)
  np.testing.assert_allclose(
      [m["learning_rate"] for m in history["ferjax"]],
      [m["learning_rate"] for m in history["torch"]], rtol=1e-6, atol=1e-8)


def _bn_counts(name: str, twin: torch.nn.Module) -> dict[str, int]:
  """Values per channel each BatchNorm averages over in a training batch.

  Measured on a copy of the twin in training mode (auxiliary heads
  included), keyed by the ferjax path of the layer's statistics.
  """
  twin = copy.deepcopy(twin).train()
  counts: dict[str, int] = {}
  for torch_name, path, kind in side_by_side.twin_weights.layers(name, twin):
    if kind == "bn":
      def count(module, inputs, output, key="/".join(path)):
        counts[key] = inputs[0].numel() // inputs[0].shape[1]
      twin.get_submodule(torch_name).register_forward_hook(count)
  h, w, c = FAMILIES[name][0]
  with torch.no_grad():
    twin(torch.zeros(BATCH, c, h, w))
  return counts


@pytest.mark.parametrize("name", CHECKED)
def test_parameters_and_batch_stats_match_after_20_steps(name):
  run = trained(name)
  ours, theirs = run["ferjax"].variables(), run["torch"].variables()
  ours_params, theirs_params = flat(ours["params"]), flat(theirs["params"])
  shaken = flat(run["self"].variables()["params"])
  assert ours_params.keys() == theirs_params.keys()
  own = max(side_by_side.relative_error(shaken[k], v)
            for k, v in theirs_params.items())
  # Twenty steps are past STRICT_STEPS: the bound is the losses' after a
  # flip. Measured: resnet_fer_small's BatchNorm biases (about 1e-3 after 20
  # steps) end 1.2e-5..1.7e-5 from PyTorch's, the same at one XLA thread,
  # while the loss gap grows from 1e-7 at step 7 to 1e-5 (BatchNorm over a
  # batch of 8 amplifies each framework's rounding); LeNet-5 stays under
  # 1e-6. A porting error still fails: the twin's stem BatchNorm at momentum
  # 0.2 puts its running mean 0.29 away.
  bound = max(AFTER_FLIP, SELF_FACTOR * own)
  for key, value in ours_params.items():
    # Biases start at 0 and move by about lr x steps: their scale is
    # floored at 0.01 so that rounding of a tiny value is no error.
    error = np.abs(value - theirs_params[key]).max() / max(
        np.abs(theirs_params[key]).max(), 1e-2)
    assert error < bound, (key, error, own)
  theirs_stats = flat(theirs["batch_stats"])
  assert bool(theirs_stats) == (name.endswith("_bn") or
                                name.startswith("resnet"))
  counts = _bn_counts(name, run["torch"].twin) if theirs_stats else {}
  for key, value in flat(ours["batch_stats"]).items():
    expected = theirs_stats[key]
    if key.endswith("/var"):
      expected = side_by_side.unbias(expected, counts[key.rsplit("/", 1)[0]],
                                     STEPS)
    error = side_by_side.relative_error(value, expected)
    assert error < bound, (key, error, own)


@pytest.mark.parametrize("name", CHECKED)
def test_evaluation_logits_of_the_final_weights_match(name):
  """ferjax's final variables, evaluated by ferjax and by the twin."""
  run = trained(name)
  ours = run["ferjax"]
  twin = side_by_side.TorchSide(
      name, recipe(name, LR_SCALE), ours.data, num_classes=NUM_CLASSES,
      steps_per_epoch=1, total_steps=1, variables=ours.variables())
  expected = twin.logits(run["eval_images"])
  got = ours.logits(run["eval_images"])
  # VGG's N(0, 0.01) dense layers give logits of order 1e-3 at width 64, so
  # the error is also taken relative to the largest logit.
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
  assert side_by_side.relative_error(got, expected) < 1e-4


def test_plateau_schedule_is_reduce_lr_on_plateau():
  """The same metric sequence gives the same learning rate at every step."""
  opt = recipe("vgg11_bn")
  opt.plateau.patience = 2
  opt.plateau.min_scale = 0.5
  # Equal is no improvement (a threshold-free torch); the third reduction
  # stops at min_lr.
  metrics = [0.3, 0.4, 0.4, 0.35, 0.41, 0.41, 0.41, 0.40, 0.5, 0.5, 0.5, 0.5,
             0.49, 0.48, 0.47, 0.46]
  steps_per_epoch, epochs = 3, len(metrics)
  schedule = side_by_side.optimizer_lib.learning_rate_schedule(
      opt, steps_per_epoch=steps_per_epoch, total_steps=epochs * 3)
  plateau = side_by_side.optimizer_lib.plateau_init()
  sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                        lr=opt.learning_rate)
  scheduler = side_by_side.torch_scheduler(
      opt, sgd, steps_per_epoch=steps_per_epoch, total_steps=epochs * 3)
  ours, theirs = [], []
  for epoch, metric in enumerate(metrics):
    for step in range(epoch * 3, epoch * 3 + 3):
      ours.append(float(schedule(step)) * float(plateau.scale))
      theirs.append(sgd.param_groups[0]["lr"])
    p = opt.plateau
    plateau = side_by_side.optimizer_lib.plateau_update(
        plateau, metric, mode=p.mode, factor=p.factor, patience=p.patience,
        min_scale=p.min_scale)
    scheduler.step(metric)
  assert len(set(theirs)) == 4  # Reduced three times, the last at min_lr.
  np.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("warmup_epochs", [0.0, 1.0, 2.5])
def test_cosine_schedule_with_warmup_is_torch_sequential_lr(warmup_epochs):
  opt = recipe("lenet5")
  opt.warmup_epochs = warmup_epochs
  steps_per_epoch, total = 4, 40
  schedule = side_by_side.optimizer_lib.learning_rate_schedule(
      opt, steps_per_epoch=steps_per_epoch, total_steps=total)
  sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                        lr=opt.learning_rate)
  scheduler = side_by_side.torch_scheduler(
      opt, sgd, steps_per_epoch=steps_per_epoch, total_steps=total)
  theirs = []
  for _ in range(total):
    theirs.append(sgd.param_groups[0]["lr"])
    sgd.step()
    scheduler.step()
  ours = [float(schedule(s)) for s in range(total)]
  assert max(ours) == pytest.approx(opt.learning_rate)
  # optax computes in float32: 1e-6 of the peak rate absolute.
  np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)
