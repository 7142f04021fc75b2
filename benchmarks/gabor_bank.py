"""What the hand-crafted features cost on their own, per batch of images.

  python benchmarks/gabor_bank.py [--batch 64] [--size 48] [--rounds 20]

Times, jitted and taking turns round by round, ferjax's Gabor bank
(``features.gabor_magnitudes``: an FFT convolution) against the same bank as
one direct ``lax.conv`` (how ferjax computed it before; the reference its
values are compared with), and the LBP codes and cell histograms of
``model.fusion`` at its defaults. Prints the median milliseconds per batch
in wall and process CPU time, and the largest difference between the two
Gabor results.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ferjax import features
from ferjax.models import fusion

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--size", type=int, default=48, help="square image side")
parser.add_argument("--rounds", type=int, default=20)
args = parser.parse_args()

spec = fusion.FusionSpec(features=("lbp", "gabor"))
bank = fusion._gabor_bank(spec.gabor)  # pylint: disable=protected-access


def gabor_direct(gray: jnp.ndarray) -> jnp.ndarray:
  """The bank as one SAME convolution with 1 input and 2F output channels."""
  responses = lax.conv_general_dilated(
      gray[..., None], jnp.asarray(bank), (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=lax.Precision.HIGHEST)
  even, odd = responses[..., 0::2], responses[..., 1::2]
  return jnp.sqrt(even * even + odd * odd)


def lbp_histograms(gray: jnp.ndarray) -> jnp.ndarray:
  s = spec.lbp
  codes = features.lbp_codes(gray, points=s.points, radius=s.radius,
                             method=s.method)
  return features.cell_histograms(
      codes, num_bins=features.num_codes(s.points, s.method), grid=s.grid)


functions = {
    "gabor, FFT (ferjax)": lambda g: features.gabor_magnitudes(g, bank),
    "gabor, direct conv": gabor_direct,
    "lbp codes": lambda g: features.lbp_codes(g, points=spec.lbp.points,
                                              radius=spec.lbp.radius,
                                              method=spec.lbp.method),
    "lbp codes + histograms": lbp_histograms,
}
gray = jnp.asarray(np.random.default_rng(0).normal(
    size=(args.batch, args.size, args.size)), jnp.float32)
jitted = {name: jax.jit(fn) for name, fn in functions.items()}
outputs = {name: jax.block_until_ready(fn(gray)) for name, fn in jitted.items()}
wall = {name: [] for name in jitted}
cpu = {name: [] for name in jitted}
for _ in range(args.rounds):
  for name, fn in jitted.items():
    t0, c0 = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(gray))
    wall[name].append(time.perf_counter() - t0)
    cpu[name].append(time.process_time() - c0)

print(f"batch {args.batch} of {args.size}x{args.size}, Gabor {bank.shape[0]}x"
      f"{bank.shape[1]} x {bank.shape[-1]} kernels, jax {jax.__version__}")
for name in jitted:
  print(f"{name:24s} {1e3 * np.median(wall[name]):8.2f} ms  "
        f"{1e3 * np.median(cpu[name]):8.2f} CPU-ms")
difference = np.abs(np.asarray(outputs["gabor, FFT (ferjax)"])
                    - np.asarray(outputs["gabor, direct conv"])).max()
print(f"largest |FFT - direct| {difference:.2e} (magnitudes up to "
      f"{np.asarray(outputs['gabor, direct conv']).max():.2f})")
