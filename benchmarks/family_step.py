"""Images per second of ferjax's own train step for each model family.

  python benchmarks/family_step.py [--models lenet5,alexnet,...] \
      [--batch 64] [--input-shape 48,48,1] [--steps 10] [--devices 1]

Times the real jitted step (gather from on-device data, preprocessing, the
forward and backward pass, SGD with momentum) on a fixed random dataset,
after one warm-up step, and prints the median over ``--steps`` steps. This
is ferjax alone; ``benchmarks/README.md`` explains the comparisons.
"""

import argparse
import functools
import os
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--models", default="lenet5,alexnet,vgg11_bn,vgg16_bn,"
                    "googlenet")
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--input-shape", default="48,48,1")
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--devices", type=int, default=1)
args = parser.parse_args()
os.environ.setdefault("XLA_FLAGS",
                      f"--xla_force_host_platform_device_count={args.devices}")

import jax  # noqa: E402  (after XLA_FLAGS on purpose)
import numpy as np  # noqa: E402
import optax  # noqa: E402

from ferjax.models import create_model  # noqa: E402
from ferjax.train import state as state_lib  # noqa: E402
from ferjax.train import steps  # noqa: E402
from ferjax.train.parallel import AXIS, Parallel  # noqa: E402


def images_per_second(name: str) -> float:
  h, w, c = (int(v) for v in args.input_shape.split(","))
  n = args.batch * 4
  rng = np.random.default_rng(0)
  data = {"images": rng.integers(0, 255, (n, h, w, c), dtype=np.uint8),
          "labels": rng.integers(0, 7, (n,)).astype(np.int32)}
  inputs = steps.InputSpec(image_size=(h, w), channels=c, mean=(0.5,),
                           std=(0.25,))
  parallel = Parallel("shard_map", jax.devices()[:args.devices])
  spec = steps.TrainSpec(global_batch=args.batch,
                         per_device_batch=args.batch // args.devices,
                         steps_per_epoch=4, num_classes=7, inputs=inputs)
  schedule = optax.constant_schedule(0.01)
  tx = optax.sgd(schedule, momentum=0.9)
  state = state_lib.create(model=create_model(name, num_classes=7), tx=tx,
                           input_shape=(h, w, c), seed=0)
  step = parallel.map(functools.partial(
      steps.train_step, model=create_model(name, num_classes=7,
                                           bn_axis_name=AXIS),
      tx=tx, schedule=schedule, spec=spec), donate_argnums=(0,))
  state = parallel.replicate(state)
  data = parallel.replicate(data)
  perm = parallel.replicate(np.arange(n, dtype=np.int32))
  state, metrics = step(state, data, perm)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    state, metrics = step(state, data, perm)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return args.batch / float(np.median(times))


print(f"ferjax train step, batch {args.batch}, input {args.input_shape}, "
      f"{args.devices} device(s), jax {jax.__version__}")
for model in args.models.split(","):
  print(f"{model:12s} {images_per_second(model):9.1f} img/s", flush=True)
