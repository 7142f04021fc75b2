"""ferjax's train step against PyTorch's, side by side in one run.

  python benchmarks/train_step.py [--models lenet5,alexnet,...] [--batch N] \
      [--input-shape H,W,C] [--dtype float32|bfloat16] [--json]

For each model, times ferjax's real jitted step (``ferjax_step``) and the
PyTorch twin's (``torch_models``) in each mode of ``--torch-modes`` on the
same uint8 data: gather the batch, normalise, forward, cross-entropy (plus
GoogLeNet's 0.3-weighted auxiliary losses), backward, SGD with momentum.
After warm-up, contenders take turns for ``--rounds`` rounds of about
``--round-seconds`` each, so that a shared machine loads them alike; each
reports the median images/s over its steps.

Also reported: achieved GFLOP/s (three times XLA's forward FLOPs per image:
forward, input gradient, weight gradient) against the peak of a 4096x4096
matmul measured in this run by both frameworks. With ``--json`` each model is
one JSON object: model, batch, ferjax_img_s, torch_img_s (by mode), ratio
(ferjax over the best PyTorch mode) and the settings used.

Without ``--batch`` the issue's configurations run: LeNet-5 at batch 128 and
512 on 32x32x3, every other family at batch 64 on 48x48x1. On a GPU both
frameworks use it; ``--dtype bfloat16`` is ferjax's ``config.model.dtype``
and PyTorch's autocast (AMP).
"""

import argparse
import gc
import json
import os
import statistics
import sys
import time

DEFAULT_MODELS = "lenet5,alexnet,vgg11_bn,vgg16_bn,googlenet"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--models", default=DEFAULT_MODELS)
parser.add_argument("--batch", type=int, default=None,
                    help="global batch (default: 128 and 512 for lenet5, "
                    "64 otherwise)")
parser.add_argument("--input-shape", default=None,
                    help="H,W,C (default: 32,32,3 for lenet5, 48,48,1 "
                    "otherwise)")
parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                    default="float32")
parser.add_argument("--cpu-devices", type=int, default=None,
                    help="XLA CPU devices (config.parallel.cpu_devices); "
                    "default: ferjax_step.CPU_DEVICES")
parser.add_argument("--devices", type=int, default=None,
                    help="devices ferjax trains on (config.parallel."
                    "num_devices); default: ferjax_step.devices_for(model)")
parser.add_argument("--backend", choices=("shard_map", "pmap"), default=None,
                    help="config.parallel.backend (default: pmap on CPU, "
                    "else shard_map)")
parser.add_argument("--torch-modes", default="eager,channels_last,compile")
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--round-seconds", type=float, default=1.0)
parser.add_argument("--json", action="store_true")
args = parser.parse_args()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ferjax_step  # noqa: E402
from twins import torch_models  # noqa: E402
from ferjax.models.summary import model_summary  # noqa: E402
from ferjax.train.parallel import Parallel, configure_cpu_devices  # noqa: E402


def log(*parts: object) -> None:
  print(*parts, file=sys.stderr if args.json else sys.stdout, flush=True)


def configurations() -> list[tuple[str, int, tuple[int, int, int]]]:
  runs = []
  for name in args.models.split(","):
    shape = args.input_shape or ("32,32,3" if name == "lenet5" else
                                 "48,48,1")
    shape = tuple(int(v) for v in shape.split(","))
    batches = ([args.batch] if args.batch else
               [128, 512] if name == "lenet5" else [64])
    runs += [(name, b, shape) for b in batches]
  return runs


class TorchStep:
  """The PyTorch twin's step in one mode, on uint8 data like ferjax's."""

  def __init__(self, name: str, batch: int, shape: tuple[int, int, int],
               mode: str, device: str):
    torch.manual_seed(0)
    model = torch_models.create(name, ferjax_step.NUM_CLASSES, shape)
    self.memory_format = (torch.contiguous_format if mode == "eager" else
                          torch.channels_last)
    model = model.to(device, memory_format=self.memory_format).train()
    self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01,
                                     momentum=0.9)
    self.params = sum(p.numel() for p in model.parameters())
    self.model = torch.compile(model) if mode == "compile" else model
    data = ferjax_step.random_dataset(batch, shape)
    # NCHW uint8, as a PyTorch loader would hold it.
    self.images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).to(
        device)
    self.labels = torch.from_numpy(data["labels"]).long().to(device)
    self.batch, self.device, self.step = batch, device, 0
    self.autocast = torch.autocast(
        device.split(":")[0], dtype=torch.bfloat16,
        enabled=args.dtype == "bfloat16")

  def __call__(self) -> None:
    start = (self.step % ferjax_step.DATASET_BATCHES) * self.batch
    self.step += 1
    x = self.images[start:start + self.batch].float().div_(255.0)
    x = x.sub_(0.5).div_(0.25).contiguous(memory_format=self.memory_format)
    y = self.labels[start:start + self.batch]
    self.optimizer.zero_grad(set_to_none=True)
    with self.autocast:
      out = self.model(x)
      if isinstance(out, tuple):
        loss = F.cross_entropy(out[0], y) + 0.3 * sum(
            F.cross_entropy(aux, y) for aux in out[1:])
        out = out[0]
      else:
        loss = F.cross_entropy(out, y)
    loss.backward()
    self.optimizer.step()
    self.accuracy = (out.argmax(1) == y).float().mean()

  def wait(self) -> None:
    if self.device.startswith("cuda"):
      torch.cuda.synchronize()


def matmul_peak(device: str) -> dict[str, float]:
  """GFLOP/s of a 4096x4096 matmul in each framework, best of three."""
  n = 4096
  dtype = args.dtype
  a = jnp.ones((n, n), dtype)
  jax_mm = jax.jit(lambda a: a @ a)
  jax.block_until_ready(jax_mm(a))
  t = torch.ones((n, n), dtype=getattr(torch, dtype), device=device)
  best = {"ferjax": 0.0, "torch": 0.0}
  for _ in range(3):
    t0 = time.perf_counter()
    jax.block_until_ready(jax_mm(a))
    best["ferjax"] = max(best["ferjax"],
                         2 * n**3 / (time.perf_counter() - t0) / 1e9)
    t0 = time.perf_counter()
    torch.mm(t, t)
    if device.startswith("cuda"):
      torch.cuda.synchronize()
    best["torch"] = max(best["torch"],
                        2 * n**3 / (time.perf_counter() - t0) / 1e9)
  return best


def timed(run, wait) -> float:
  t0 = time.perf_counter()
  run()
  wait()
  return time.perf_counter() - t0


def compare(name: str, batch: int, shape: tuple[int, int, int],
            backend: str, device: str, peak: float) -> dict:
  """Warms every contender up, then times them in alternating rounds."""
  devices = (jax.devices()[:args.devices] if args.devices else
             ferjax_step.devices_for(name))
  parallel = Parallel(backend, devices)
  contenders = {}
  step = ferjax_step.build(name, batch=batch, input_shape=shape,
                           parallel=parallel, dtype=getattr(jnp, args.dtype))
  ferjax_params = sum(x.size for x in jax.tree.leaves(
      parallel.unreplicate(step.state).params))
  contenders["ferjax"] = (step, lambda: jax.block_until_ready(step.state))
  torch_params = None
  for mode in args.torch_modes.split(","):
    try:
      t_step = TorchStep(name, batch, shape, mode, device)
      t_step()
      t_step.wait()
    except Exception as e:  # noqa: BLE001 - report and carry on.
      log(f"  torch {mode}: unavailable ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:120]})")
      continue
    torch_params = t_step.params
    contenders[f"torch_{mode}"] = (t_step, t_step.wait)
  if torch_params is not None and torch_params != ferjax_params:
    raise AssertionError(f"{name}: ferjax has {ferjax_params} parameters, "
                         f"the PyTorch twin {torch_params}")
  warm = {}
  for key, (run, wait) in contenders.items():
    timed(run, wait)
    warm[key] = timed(run, wait)
  times = {key: [] for key in contenders}
  keys = list(contenders)
  for r in range(args.rounds):
    for key in keys[r % len(keys):] + keys[:r % len(keys)]:
      run, wait = contenders[key]
      for _ in range(max(1, round(args.round_seconds / warm[key]))):
        times[key].append(timed(run, wait))
  img_s = {key: batch / statistics.median(t) for key, t in times.items()}
  torch_img_s = {key.removeprefix("torch_"): round(v, 1)
                 for key, v in img_s.items() if key != "ferjax"}
  best = max(torch_img_s.values()) if torch_img_s else float("nan")
  train_flops = 3 * model_summary(name, shape, ferjax_step.NUM_CLASSES)["flops"]
  gflop_s = {key: v * train_flops / 1e9 for key, v in img_s.items()}
  return {
      "model": name, "batch": batch, "input_shape": list(shape),
      "dtype": args.dtype, "params": ferjax_params,
      "ferjax_img_s": round(img_s["ferjax"], 1),
      "torch_img_s": torch_img_s,
      "ratio": round(img_s["ferjax"] / best, 3),
      "gflop_s": {k: round(v, 1) for k, v in gflop_s.items()},
      "peak_fraction": {k: round(v / peak, 3) for k, v in gflop_s.items()},
      "devices": len(devices), "backend": backend,
  }


def main() -> None:
  platform = jax.default_backend()
  device = "cuda" if platform == "gpu" else "cpu"
  backend = args.backend or ferjax_step.default_backend()
  peak = matmul_peak(device)
  settings = (f"jax {jax.__version__}, torch {torch.__version__}, {platform}: "
              f"{len(jax.devices())} device(s), backend {backend}, "
              f"{args.dtype}, torch threads {torch.get_num_threads()}, "
              f"load average {os.getloadavg()[0]:.1f}; "
              f"4096^2 matmul GFLOP/s: ferjax {peak['ferjax']:.0f}, torch "
              f"{peak['torch']:.0f}")
  log(settings)
  peak_gflop_s = max(peak.values())
  for name, batch, shape in configurations():
    row = compare(name, batch, shape, backend, device, peak_gflop_s)
    row.update(platform=platform, load_average=round(os.getloadavg()[0], 1))
    if args.json:
      print(json.dumps(row), flush=True)
    else:
      modes = "  ".join(f"{m} {v:,.1f}" for m, v in row["torch_img_s"].items())
      print(f"{name:10s} batch {batch:4d} {'x'.join(map(str, shape)):8s} "
            f"ferjax ({row['devices']} dev) {row['ferjax_img_s']:,.1f} img/s"
            f" | torch {modes} | "
            f"ratio {row['ratio']:.2f} | GFLOP/s "
            + " ".join(f"{k} {v:.0f} ({row['peak_fraction'][k]:.0%})"
                       for k, v in row["gflop_s"].items()), flush=True)
    gc.collect()


if __name__ == "__main__":
  configure_cpu_devices(args.cpu_devices or ferjax_step.CPU_DEVICES)
  main()
