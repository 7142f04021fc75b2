"""One family trained by ferjax and by its PyTorch twin, batch for batch.

The ferjax side is ferjax's own jitted ``steps.train_step`` (preprocessing,
loss with auxiliary heads, the config's optimizer and schedule) on one
device; the PyTorch side is the twin with ``torch.optim.SGD`` and the
``torch.optim.lr_scheduler`` equivalent of the config's schedule. Both start
from the same weights (``twin_weights``) and read the same uint8 rows, so any
difference is the frameworks' arithmetic or a porting bug.
``tests/integration/test_parity.py`` compares them step by step and
``learning_curves.py`` over whole epochs.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import torch
import torch.nn.functional as F

from ferjax.models import create_model
from ferjax import losses
from ferjax.train import optimizer as optimizer_lib
from ferjax.train import state as state_lib
from ferjax.train import steps
from ferjax.train.parallel import AXIS, Parallel

from twins import torch_models
from twins import twin_weights


def torch_scheduler(opt: ml_collections.ConfigDict,
                    optimizer: torch.optim.Optimizer, *, steps_per_epoch: int,
                    total_steps: int) -> Any:
  """The PyTorch scheduler of ferjax's ``optimizer.schedule``.

  ``plateau`` is ``ReduceLROnPlateau`` without a threshold (ferjax compares
  plainly; torch's default needs a 1e-4 relative gain), stepped with the
  metric after each evaluation; the others are stepped once per training
  step. Linear warm-up from 0 has no built-in (``LinearLR`` refuses a start
  factor of 0), so it is a ``LambdaLR``.
  """
  sched = torch.optim.lr_scheduler
  warmup = int(round(opt.warmup_epochs * steps_per_epoch))
  if opt.schedule == "plateau":
    if warmup:
      raise ValueError("no PyTorch equivalent of plateau with warm-up here")
    p = opt.plateau
    return sched.ReduceLROnPlateau(
        optimizer, mode=p.mode, factor=p.factor, patience=p.patience,
        threshold=0.0, min_lr=opt.learning_rate * p.min_scale)
  if opt.schedule == "constant" and not warmup:
    return sched.LambdaLR(optimizer, lambda step: 1.0)
  if opt.schedule != "cosine":
    raise ValueError(f"no PyTorch equivalent of {opt.schedule!r} here")
  cosine = sched.CosineAnnealingLR(
      optimizer, T_max=max(total_steps, warmup + 1) - warmup, eta_min=0.0)
  if not warmup:
    return cosine
  ramp = sched.LambdaLR(optimizer, lambda step: step / warmup)
  return sched.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


@dataclasses.dataclass
class Data:
  """uint8 NHWC images and int labels; each side normalises them itself."""

  images: np.ndarray
  labels: np.ndarray
  mean: tuple[float, ...]
  std: tuple[float, ...]

  def torch_batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows as the twin's input: the same float32 ops as ferjax's."""
    x = self.images[rows].astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std,
                                                             np.float32)
    return (torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
            torch.from_numpy(self.labels[rows].astype(np.int64)))


class FerjaxSide:
  """ferjax's train step on one device; ``step(rows)`` trains on ``rows``."""

  def __init__(self, name: str, model_kwargs: dict[str, Any],
               opt: ml_collections.ConfigDict, data: Data, *,
               num_classes: int, batch: int, steps_per_epoch: int,
               total_steps: int, variables: dict[str, Any],
               aux_weight: float = 0.3,
               augment: steps.AugmentFn | None = None, seed: int = 0):
    self.model = create_model(name, num_classes=num_classes,
                              bn_axis_name=AXIS, **model_kwargs)
    self.eval_model = create_model(name, num_classes=num_classes,
                                   **model_kwargs)
    self.schedule = optimizer_lib.learning_rate_schedule(
        opt, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
    tx = optimizer_lib.make_optimizer(opt, self.schedule)
    h, w, c = data.images.shape[1:]
    self.inputs = steps.InputSpec(image_size=(h, w), channels=c,
                                  mean=data.mean, std=data.std)
    spec = steps.TrainSpec(
        global_batch=batch, per_device_batch=batch,
        steps_per_epoch=steps_per_epoch, inputs=self.inputs,
        loss=losses.LossSpec(num_classes=num_classes, aux_weight=aux_weight),
        streaming=True)
    self.parallel = Parallel("pmap", jax.devices()[:1])
    self._step = self.parallel.map(functools.partial(
        steps.train_step, model=self.model, tx=tx, schedule=self.schedule,
        spec=spec, augment=augment))
    state = state_lib.create(model=self.eval_model, tx=tx,
                             input_shape=(h, w, c), seed=seed)
    state = state.replace(
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(variables["params"]))
    self.state = self.parallel.replicate(state)
    self.data = data
    self._dummy_perm = self.parallel.replicate(np.zeros((1,), np.int32))
    self._logits = jax.jit(lambda v, x: self.eval_model.apply(v, x))

  def step(self, rows: np.ndarray) -> dict[str, float]:
    """One step on ``rows`` (streamed, as the step's sharded argument)."""
    batch = {"images": self.data.images[rows][None],
             "labels": self.data.labels[rows].astype(np.int32)[None]}
    self.state, metrics = self._step(self.state, batch, self._dummy_perm)
    return {k: float(v[0]) for k, v in metrics.items()}

  def set_plateau(self, value: float, opt: ml_collections.ConfigDict) -> None:
    """The loop's reduce-on-plateau update after an evaluation."""
    state = self.parallel.unreplicate(self.state)
    p = opt.plateau
    plateau = optimizer_lib.plateau_update(
        jax.device_get(state.plateau), value, mode=p.mode, factor=p.factor,
        patience=p.patience, min_scale=p.min_scale)
    self.state = self.parallel.replicate(
        jax.device_get(state).replace(plateau=plateau))

  def variables(self) -> dict[str, Any]:
    state = jax.device_get(self.parallel.unreplicate(self.state))
    return {"params": state.params, "batch_stats": state.batch_stats}

  def logits(self, images: np.ndarray) -> np.ndarray:
    """Evaluation-mode logits of uint8 NHWC ``images``."""
    x = self.inputs(jnp.asarray(images, jnp.float32) / 255.0)
    return np.asarray(self._logits(self.variables(), x))


class TorchSide:
  """The twin with ``torch.optim.SGD`` and the equivalent scheduler."""

  def __init__(self, name: str, opt: ml_collections.ConfigDict, data: Data, *,
               num_classes: int, steps_per_epoch: int, total_steps: int,
               variables: dict[str, Any], aux_weight: float = 0.3,
               dropout: float | None = 0.0, perturb: int = 0,
               transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
    self.name = name
    self.twin = torch_models.create(
        name, num_classes, data.images.shape[1:],
        **({"classifier_width": variables["params"]["Dense_1"]["kernel"].shape[0]}
           if torch_models.has_dense_classifier(name) else {}))
    if dropout is not None:
      for m in self.twin.modules():
        if isinstance(m, torch.nn.Dropout):
          m.p = dropout
    twin_weights.load_variables(name, self.twin, variables)
    self.channels_last = bool(perturb)
    if perturb:
      # PyTorch against itself: weights about one float32 ulp away (signs
      # seeded by ``perturb``) and channels_last, whose oneDNN kernels round
      # differently at every step, as another framework's would.
      generator = torch.Generator().manual_seed(perturb)
      with torch.no_grad():
        for p in self.twin.parameters():
          signs = torch.randint(0, 2, p.shape, generator=generator) * 2 - 1
          p.mul_(1 + 1.2e-7 * signs)
      self.twin = self.twin.to(memory_format=torch.channels_last)
    self.optimizer = torch.optim.SGD(
        self.twin.parameters(), lr=opt.learning_rate,
        momentum=opt.momentum or 0.0, nesterov=bool(opt.nesterov),
        weight_decay=opt.weight_decay or 0.0)
    self.scheduler = torch_scheduler(opt, self.optimizer,
                                     steps_per_epoch=steps_per_epoch,
                                     total_steps=total_steps)
    self.plateau = opt.schedule == "plateau"
    self.clip = opt.grad_clip_norm
    self.aux_weight = aux_weight
    self.data = data
    self.transform = transform

  def lr(self) -> float:
    return self.optimizer.param_groups[0]["lr"]

  def step(self, rows: np.ndarray) -> dict[str, float]:
    x, y = self.data.torch_batch(rows)
    if self.channels_last:
      x = x.contiguous(memory_format=torch.channels_last)
    if self.transform is not None:
      x = self.transform(x)
    lr = self.lr()
    self.twin.train()
    self.optimizer.zero_grad()
    out = self.twin(x)
    logits, *aux = out if isinstance(out, tuple) else (out,)
    loss = F.cross_entropy(logits, y)
    for a in aux:
      loss = loss + self.aux_weight * F.cross_entropy(a, y)
    loss.backward()
    if self.clip:  # optax clips before weight decay enters, as torch does.
      torch.nn.utils.clip_grad_norm_(self.twin.parameters(), self.clip)
    self.optimizer.step()
    if not self.plateau:
      self.scheduler.step()
    accuracy = (logits.argmax(-1) == y).float().mean()
    return {"loss": float(loss.detach()), "accuracy": float(accuracy),
            "learning_rate": lr}

  def set_plateau(self, value: float) -> None:
    self.scheduler.step(value)

  def variables(self) -> dict[str, Any]:
    return twin_weights.to_variables(self.name, self.twin)

  @torch.no_grad()
  def logits(self, images: np.ndarray) -> np.ndarray:
    """Evaluation-mode logits of uint8 NHWC ``images``."""
    self.twin.eval()
    x, _ = Data(images, np.zeros(len(images), np.int64), self.data.mean,
                self.data.std).torch_batch(np.arange(len(images)))
    return self.twin(x).numpy()


def initial_variables(name: str, model_kwargs: dict[str, Any], *,
                      num_classes: int, input_shape: tuple[int, int, int],
                      seed: int) -> dict[str, Any]:
  """ferjax's own initialisation, the weights both sides start from."""
  model = create_model(name, num_classes=num_classes, **model_kwargs)
  variables = jax.jit(lambda: model.init(
      {"params": jax.random.PRNGKey(seed),
       "dropout": jax.random.PRNGKey(seed + 1)},
      jnp.zeros((2, *input_shape), jnp.float32), train=True))()
  return jax.device_get({"params": variables["params"],
                         "batch_stats": variables.get("batch_stats", {})})


def torch_initial_variables(name: str, *, num_classes: int,
                            input_shape: tuple[int, int, int], seed: int,
                            classifier_width: int = 4096) -> dict[str, Any]:
  """The twin's own PyTorch initialisation of ``seed``, as ferjax variables."""
  torch.manual_seed(seed)
  kwargs = ({"classifier_width": classifier_width}
            if torch_models.has_dense_classifier(name) else {})
  twin = torch_models.create(name, num_classes, input_shape, **kwargs)
  return twin_weights.to_variables(name, twin)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
  """max |a - b| / max |b|: one number per tensor, robust to zeros."""
  scale = float(np.max(np.abs(b))) or 1.0
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale


def steps_for(total: int, batch: int, n: int) -> list[np.ndarray]:
  """Rows of ``total`` consecutive batches cycling through ``n`` examples."""
  per_epoch = n // batch
  return [np.arange(batch) + (s % per_epoch) * batch for s in range(total)]


def unbias(var_torch: np.ndarray, count: int, steps: int,
           momentum: float = 0.1) -> np.ndarray:
  """torch's running variance in ferjax's (biased) convention.

  torch folds the unbiased batch variance (x n/(n-1)) into running_var,
  flax the biased one; from running_var = 1 both are
  ``(1 - m)^t + m * sum(...)``, so the two differ by that factor on the part
  that is not the initial 1.
  """
  start = (1 - momentum) ** steps
  return start + (var_torch - start) * (count - 1) / count

