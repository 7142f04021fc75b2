"""ferjax's whole training loop against the bare train step it runs.

  python benchmarks/loop_vs_step.py [--models lenet5,alexnet_bn,...] \
      [--batch N] [--steps 96] [--log-every 32] [--steps-per-call 1,auto] \
      [--trivial-step] [--repeats 1] [--data-dir DIR] [--json]

For each family (default: all four, at their FER2013 input sizes and a
small batch), trains one epoch of ``--steps`` steps with
``train_and_evaluate`` on ``synthetic_fer`` (built into ``--data-dir``, a
temporary one unless given), once per ``train.steps_per_call`` listed, with
the FER2013 recipes' augmentation inside the step, metrics fetched every
``--log-every`` steps, progress and the end-of-epoch checkpoint: everything
a real run does. The loop's speed is the median of the images/s it logs
itself, leaving out the first window (compilation). Timed before and after
the loops, on the same devices: the loop's own step called alone (48x48x1
data resized in the step, augmented) and the bare step (``ferjax_step``,
data at the model's size, no augmentation). The loop should stay within 3%
of its own step.

``--trivial-step`` swaps the step (and the evaluations) for programs that do
no arithmetic but take and return the whole train state, as the real step
does: what is left is the host's time per step (the loop's bookkeeping and
the per-array cost of dispatching the state), printed in microseconds.
"""

import argparse
import dataclasses
import functools
import json
import statistics
import sys
import tempfile
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--models",
                    default="lenet5,alexnet_bn,vgg11_bn,googlenet_bn")
parser.add_argument("--batch", type=int, default=None,
                    help="default: 128 for lenet5, 16 for the others")
parser.add_argument("--steps", type=int, default=96)
parser.add_argument("--log-every", type=int, default=32)
parser.add_argument("--steps-per-call", default="1,auto",
                    help="comma-separated train.steps_per_call values")
parser.add_argument("--trivial-step", action="store_true")
parser.add_argument("--repeats", type=int, default=1)
parser.add_argument("--seconds", type=float, default=5.0,
                    help="how long each bare-step timing runs")
parser.add_argument("--data-dir", default=None)
parser.add_argument("--cpu-devices", type=int, default=None)
parser.add_argument("--num-devices", type=int, default=None,
                    help="default: ferjax_step.devices_for(model)")
parser.add_argument("--backend", choices=("shard_map", "pmap"), default=None)
parser.add_argument("--json", action="store_true")
args = parser.parse_args()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402

import ferjax_step  # noqa: E402
from ferjax import config as config_lib  # noqa: E402
from ferjax.data import augment  # noqa: E402
from ferjax.train import loop  # noqa: E402
from ferjax.train import setup as setup_lib  # noqa: E402
from ferjax.run.run_dir import read_metrics  # noqa: E402
from ferjax.train.parallel import Parallel, configure_cpu_devices  # noqa: E402

# The augmentation of experiments/fer2013_*.py.
AUGMENT = dict(crop=dict(mode="resize", scale=(0.8, 1.0)), flip=True,
               rotation=10.0, erasing=0.5)
# The FER2013 recipes' model inputs, and a batch that keeps a CPU run short.
SHAPES = {"lenet5": (32, 32, 3)}
OTHER_SHAPE = (48, 48, 1)
BATCHES = {"lenet5": 128}
OTHER_BATCH = 16


def log(*parts: object) -> None:
  print(*parts, file=sys.stderr if args.json else sys.stdout, flush=True)


def run_config(model: str, batch: int, data_dir: str,
               shape: tuple[int, int, int], backend: str,
               steps_per_call: str) -> ml_collections.ConfigDict:
  config = config_lib.base_config()
  config.num_epochs = 1
  config.batch_size = batch
  config.log_every_steps = args.log_every
  config.input.data_dir = data_dir
  config.input.train_split = f"train[:{args.steps * batch}]"
  config.input.image_size = shape[:2]
  config.input.channels = shape[2]
  config.input.mean, config.input.std = (0.5,) * shape[2], (0.25,) * shape[2]
  config.input.augment = ml_collections.ConfigDict(AUGMENT)
  config.evals = ml_collections.ConfigDict(dict(test=dict(
      split=f"test[:{batch}]", tta="none")))
  config.model.name = model
  config.parallel.backend = backend
  config.parallel.num_devices = len(devices_for(model))
  if "train" in config:  # A ferjax from before steps_per_call runs 1.
    config.train.steps_per_call = steps_per_call
  elif steps_per_call != "1":
    raise SystemExit("this ferjax has no train.steps_per_call")
  return config


class _NoEvaluation:
  """Stands in for an evaluator in --trivial-step mode: no compilation."""

  weights = "raw"

  def __call__(self, variables):
    return {"accuracy": 0.0, "loss": 0.0}


def trivial_training(config, parallel):
  """The run's Training with a step that does no arithmetic.

  It takes the whole state (donated) and returns it with the step counter
  advanced, and metrics shaped as the real step's: what remains of a step
  is the host's share.
  """
  training = real_training(config, parallel)
  k = getattr(training, "steps_per_call", 1)

  def step(state, data, perm, *, n):
    zeros = jnp.zeros((n,) if k > 1 else (), jnp.float32)
    return state.replace(step=state.step + n), {
        "loss": zeros, "accuracy": zeros, "learning_rate": zeros}

  programs = {}

  def call(state, data, perm, n=k):
    # One program per call length, as the real step (a call ending an
    # epoch may be shorter than k); a ferjax before that passes no n.
    if n not in programs:
      programs[n] = parallel.map(functools.partial(step, n=n),
                                 donate_argnums=(0,))
    return programs[n](state, data, perm)

  return dataclasses.replace(
      training, train_step=call,
      evaluators={name: _NoEvaluation() for name in training.evaluators})


real_training = setup_lib.training


def devices_for(model: str) -> list:
  if args.num_devices:
    return jax.devices()[:args.num_devices]
  return ferjax_step.devices_for(model)


def loop_img_s(config: ml_collections.ConfigDict) -> tuple[float, int]:
  """The median images/s of the loop's windows after the first; and k."""
  with tempfile.TemporaryDirectory() as workdir:
    loop.train_and_evaluate(config, workdir, argv=sys.argv)
    events = [e for e in read_metrics(workdir) if e["split"] == "train"]
  k = config.get("train", {}).get("steps_per_call", "1")
  if k == "auto":
    k = setup_lib.steps_per_call(config, args.steps)
  return statistics.median(e["images_per_second"] for e in events[1:]), k


def step_img_s(model: str, batch: int, parallel: Parallel,
               shape: tuple[int, int, int], as_the_loop: bool = False
               ) -> float:
  """The bare step, or (``as_the_loop``) the loop's: 48x48x1 data, augmented."""
  step = ferjax_step.build(
      model, batch=batch, input_shape=shape, parallel=parallel,
      augment=functools.partial(augment.augment, cfg=AUGMENT)
      if as_the_loop else None,
      stored_shape=(48, 48, 1) if as_the_loop else None)
  jax.block_until_ready(step())
  times = []
  end = time.perf_counter() + args.seconds
  while time.perf_counter() < end or len(times) < 5:
    t0 = time.perf_counter()
    jax.block_until_ready(step())
    times.append(time.perf_counter() - t0)
  return batch / statistics.median(times)


def family(model: str, data_dir: str) -> dict:
  shape = SHAPES.get(model, OTHER_SHAPE)
  batch = args.batch or BATCHES.get(model, OTHER_BATCH)
  backend = args.backend or ferjax_step.default_backend()
  devices = devices_for(model)
  parallel = Parallel(backend, devices)
  row = {"model": model, "batch": batch, "input_shape": list(shape),
         "devices": len(devices), "backend": backend, "loops": {}}
  if not args.trivial_step:
    own = [step_img_s(model, batch, parallel, shape, as_the_loop=True)]
    bare = [step_img_s(model, batch, parallel, shape)]
  # Alternating the settings, repeated: the sweep's load drifts.
  rates: dict[str, list[float]] = {}
  for _ in range(args.repeats):
    for k in args.steps_per_call.split(","):
      rate, resolved = loop_img_s(run_config(model, batch, data_dir, shape,
                                             backend, k))
      rates.setdefault(k, []).append(rate)
      row["loops"].setdefault(k, {})["steps_per_call"] = resolved
  for k, values in rates.items():
    loop_rate = statistics.median(values)
    entry = row["loops"][k]
    entry["loop_img_s"] = round(loop_rate, 1)
    entry["host_us_per_step"] = round(batch / loop_rate * 1e6, 1)
  if args.trivial_step:
    return row
  own.append(step_img_s(model, batch, parallel, shape, as_the_loop=True))
  bare.append(step_img_s(model, batch, parallel, shape))
  row["own_step_img_s"] = round(statistics.mean(own), 1)
  row["bare_step_img_s"] = round(statistics.mean(bare), 1)
  for entry in row["loops"].values():
    entry.pop("host_us_per_step")
    entry["loop_over_own_step"] = round(
        entry["loop_img_s"] / row["own_step_img_s"], 3)
    entry["loop_over_bare_step"] = round(
        entry["loop_img_s"] / row["bare_step_img_s"], 3)
  return row


def describe(row: dict) -> str:
  head = (f"{row['model']} batch {row['batch']} "
          f"{'x'.join(map(str, row['input_shape']))}, {row['devices']} "
          f"device(s) {row['backend']}:")
  parts = []
  for k, e in row["loops"].items():
    name = f"k={k}" + (f"({e['steps_per_call']})"
                       if str(e["steps_per_call"]) != k else "")
    if args.trivial_step:
      parts.append(f"{name} host {e['host_us_per_step']:,.1f} us/step")
    else:
      parts.append(f"{name} loop {e['loop_img_s']:,.1f} img/s, "
                   f"/own step {e['loop_over_own_step']:.3f}, "
                   f"/bare step {e['loop_over_bare_step']:.3f}")
  if not args.trivial_step:
    parts.append(f"own step {row['own_step_img_s']:,.1f} img/s, bare step "
                 f"{row['bare_step_img_s']:,.1f} img/s")
  return " ".join([head, "; ".join(parts)])


def main() -> None:
  if args.trivial_step:
    setup_lib.training = trivial_training
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="ferjax_bench_tfds_")
  from ferjax.data.synthetic_fer import SyntheticFer
  log(f"synthetic_fer in {data_dir}")
  SyntheticFer(data_dir=data_dir,
               file_format="array_record").download_and_prepare()
  for model in args.models.split(","):
    row = family(model, data_dir)
    print(json.dumps(row) if args.json else describe(row), flush=True)


if __name__ == "__main__":
  configure_cpu_devices(args.cpu_devices or ferjax_step.CPU_DEVICES)
  main()
