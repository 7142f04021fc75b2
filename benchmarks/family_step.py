"""Images per second of ferjax's own train step for each model family.

  python benchmarks/family_step.py [--models lenet5,alexnet_bn:small_stride=2,...] \
      [--batch 64] [--input-shape 48,48,1] [--steps 10] [--devices 1] \
      [--backend shard_map|pmap] \
      [--fusion none,lbp:early,lbp:late,gabor:early,lbp+gabor:late,none@9]

Times the real jitted step (gather from on-device data, preprocessing, the
forward and backward pass, SGD with momentum) on a fixed random dataset,
after one warm-up step, and prints the median over ``--steps`` steps, in
images per second and per CPU second of the process. This
is ferjax alone; ``train_step.py`` compares it with PyTorch. ``--fusion``
times each model once per ``FEATURES:MODE`` (``model.fusion`` at its
defaults; ``none`` is the plain model) in one process: a model's variants
take turns step by step, so a machine shared with other jobs slows them
alike, and each row also gives its speed relative to the first variant.
``none@C`` is the plain model on C input channels, no features computed:
what early fusion's wider first layer costs by itself (``gabor:early`` on
a grey image gives the CNN 1 + 8 channels, ``none@9``). A model may carry
integer model kwargs, ``NAME:KEY=VALUE:...`` (``config.model.kwargs``).
"""

import argparse
import os
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--models", default="lenet5,alexnet,vgg11_bn,vgg16_bn,"
                    "googlenet")
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--input-shape", default="48,48,1")
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--devices", type=int, default=1)
parser.add_argument("--backend", choices=("shard_map", "pmap"),
                    default="shard_map")
parser.add_argument("--fusion", default="none",
                    help="comma-separated FEATURES:MODE variants, e.g. "
                    "none,lbp:late,lbp+gabor:early; none@C: the plain model "
                    "on C input channels")
args = parser.parse_args()
os.environ.setdefault("XLA_FLAGS",
                      f"--xla_force_host_platform_device_count={args.devices}")

import jax  # noqa: E402  (after XLA_FLAGS on purpose)
import numpy as np  # noqa: E402

import ferjax_step  # noqa: E402
from ferjax import config as config_lib  # noqa: E402
from ferjax.train.parallel import Parallel  # noqa: E402


def fusion_config(variant: str) -> dict | None:
  """``lbp+gabor:late`` -> ``config.model.fusion``; ``none`` -> None."""
  if variant == "none":
    return None
  feats, _, mode = variant.partition(":")
  fusion = config_lib.base_config().model.fusion.to_dict()
  fusion.update(features=tuple(feats.split("+")), mode=mode or "late")
  return fusion


def build(model: str, variant: str) -> ferjax_step.Step:
  name, *pairs = model.split(":")
  kwargs = {k: int(v) for k, v in (p.split("=") for p in pairs)}
  h, w, c = (int(v) for v in args.input_shape.split(","))
  fusion = None
  if variant.startswith("none@"):
    c = int(variant.removeprefix("none@"))
  else:
    fusion = fusion_config(variant)
  parallel = Parallel(args.backend, jax.devices()[:args.devices])
  return ferjax_step.build(name, batch=args.batch, input_shape=(h, w, c),
                           parallel=parallel, fusion=fusion,
                           model_kwargs=kwargs)


def images_per_second(steps: dict[str, ferjax_step.Step]
                      ) -> dict[str, tuple[float, float]]:
  """Median images per wall second and per CPU second of each step.

  The steps take turns. CPU seconds are this process's, all its threads:
  on a machine shared with other jobs they count the work a step does, not
  the time it waited for a core, so their ratios are the steadier ones.
  """
  for step in steps.values():
    jax.block_until_ready(step())
  times = {variant: ([], []) for variant in steps}
  for _ in range(args.steps):
    for variant, step in steps.items():
      t0, c0 = time.perf_counter(), time.process_time()
      jax.block_until_ready(step())
      times[variant][0].append(time.perf_counter() - t0)
      times[variant][1].append(time.process_time() - c0)
  return {v: (args.batch / float(np.median(wall)),
              args.batch / float(np.median(cpu)))
          for v, (wall, cpu) in times.items()}


print(f"ferjax train step, batch {args.batch}, input {args.input_shape}, "
      f"{args.devices} device(s), {args.backend}, jax {jax.__version__}")
for model in args.models.split(","):
  variants = args.fusion.split(",")
  speeds = images_per_second({v: build(model, v) for v in variants})
  base_wall, base_cpu = speeds[variants[0]]
  for variant, (wall, cpu) in speeds.items():
    label = model if variant == "none" else (
        f"{model} {variant}" if variant.startswith("none@") else
        f"{model} +{variant}")
    print(f"{label:28s} {wall:9.1f} img/s  {wall / base_wall:5.2f}x  "
          f"{cpu:9.1f} img/CPU-s  {cpu / base_cpu:5.2f}x", flush=True)
