"""ferjax's whole training loop against the bare train step it runs.

  python benchmarks/loop_vs_step.py [--model lenet5] [--batch 128] \
      [--input-shape 32,32,3] [--steps 100] [--data-dir DIR] [--json]

Trains one epoch of ``--steps`` steps with ``train_and_evaluate`` on
``synthetic_fer`` (built into ``--data-dir``, a temporary one unless given; 14,000
training images, so ``--steps`` times ``--batch`` must not exceed that), with
the FER2013 recipes' augmentation (random resized crop, flip, rotation,
random erasing) inside the step, metrics fetched every ``--log-every``
steps, progress and the end-of-epoch checkpoint and evaluation: everything a
real run does. The loop's speed is the median of the images/s it logs
itself, leaving out the first interval (compilation). Timed before and
after the loop, on the same devices: the bare step (``ferjax_step``, data
already at the model's size, no augmentation) and the loop's own step alone
(48x48x1 data resized in the step, augmented), which separates what the
augmentation costs from what the loop around the step costs. The loop
should stay within 10% of the step.
"""

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="lenet5")
parser.add_argument("--batch", type=int, default=128)
parser.add_argument("--input-shape", default="32,32,3")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--log-every", type=int, default=10)
parser.add_argument("--data-dir", default=None)
parser.add_argument("--cpu-devices", type=int, default=None)
parser.add_argument("--backend", choices=("shard_map", "pmap"), default=None)
parser.add_argument("--json", action="store_true")
args = parser.parse_args()

import jax  # noqa: E402
import ml_collections  # noqa: E402

import ferjax_step  # noqa: E402
from ferjax import config as config_lib  # noqa: E402
from ferjax.data import augment  # noqa: E402
from ferjax.train import loop  # noqa: E402
from ferjax.run.run_dir import read_metrics  # noqa: E402
from ferjax.train.parallel import Parallel, configure_cpu_devices  # noqa: E402

# The augmentation of experiments/fer2013_*.py.
AUGMENT = dict(crop=dict(mode="resize", scale=(0.8, 1.0)), flip=True,
               rotation=10.0, erasing=0.5)


def log(*parts: object) -> None:
  print(*parts, file=sys.stderr if args.json else sys.stdout, flush=True)


def run_config(data_dir: str, shape: tuple[int, int, int],
               backend: str) -> ml_collections.ConfigDict:
  config = config_lib.base_config()
  config.num_epochs = 1
  config.batch_size = args.batch
  config.log_every_steps = args.log_every
  config.input.data_dir = data_dir
  config.input.train_split = f"train[:{args.steps * args.batch}]"
  config.input.image_size = shape[:2]
  config.input.channels = shape[2]
  config.input.augment = ml_collections.ConfigDict(AUGMENT)
  config.evals = ml_collections.ConfigDict(dict(test=dict(
      split=f"test[:{args.batch}]", tta="none")))
  config.model.name = args.model
  config.parallel.backend = backend
  config.parallel.num_devices = len(ferjax_step.devices_for(args.model))
  return config


def step_img_s(parallel: Parallel, shape: tuple[int, int, int],
               seconds: float = 10.0, as_the_loop: bool = False) -> float:
  """The bare step, or (``as_the_loop``) the loop's: 48x48x1 data, augmented."""
  step = ferjax_step.build(
      args.model, batch=args.batch, input_shape=shape, parallel=parallel,
      augment=functools.partial(augment.augment, cfg=AUGMENT)
      if as_the_loop else None,
      stored_shape=(48, 48, 1) if as_the_loop else None)
  jax.block_until_ready(step())
  times = []
  end = time.perf_counter() + seconds
  while time.perf_counter() < end or len(times) < 5:
    t0 = time.perf_counter()
    jax.block_until_ready(step())
    times.append(time.perf_counter() - t0)
  return args.batch / statistics.median(times)


def main() -> None:
  shape = tuple(int(v) for v in args.input_shape.split(","))
  backend = args.backend or ferjax_step.default_backend()
  devices = ferjax_step.devices_for(args.model)
  parallel = Parallel(backend, devices)
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="ferjax_bench_tfds_")
  from ferjax.data.synthetic_fer import SyntheticFer
  log(f"synthetic_fer in {data_dir}")
  SyntheticFer(data_dir=data_dir,
               file_format="array_record").download_and_prepare()
  before = step_img_s(parallel, shape)
  as_loop_before = step_img_s(parallel, shape, as_the_loop=True)
  with tempfile.TemporaryDirectory() as workdir:
    loop.train_and_evaluate(run_config(data_dir, shape, backend), workdir,
                            argv=sys.argv)
    events = [e for e in read_metrics(workdir) if e["split"] == "train"]
  as_loop_after = step_img_s(parallel, shape, as_the_loop=True)
  after = step_img_s(parallel, shape)
  loop_img_s = statistics.median(e["images_per_second"] for e in events[1:])
  bare = statistics.mean([before, after])
  augmented = statistics.mean([as_loop_before, as_loop_after])
  row = {"model": args.model, "batch": args.batch, "input_shape": list(shape),
         "devices": len(devices), "backend": backend,
         "loop_img_s": round(loop_img_s, 1),
         "step_img_s": round(bare, 1),
         "augmented_step_img_s": round(augmented, 1),
         "loop_over_step": round(loop_img_s / bare, 3),
         "loop_over_augmented_step": round(loop_img_s / augmented, 3)}
  if args.json:
    print(json.dumps(row))
  else:
    print(f"{args.model} batch {args.batch} {args.input_shape}, "
          f"{row['devices']} device(s) {backend}: loop {loop_img_s:,.1f} "
          f"img/s; bare step {bare:,.1f} img/s (before {before:,.1f}, "
          f"after {after:,.1f}); the loop's step (48x48x1 data, resize, "
          f"augmentation) {augmented:,.1f} img/s; loop/step "
          f"{row['loop_over_step']:.2f}, loop/its step "
          f"{row['loop_over_augmented_step']:.2f}")


if __name__ == "__main__":
  configure_cpu_devices(args.cpu_devices or ferjax_step.CPU_DEVICES)
  main()
