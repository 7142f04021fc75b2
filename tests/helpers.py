"""What several test files share: configs, runs, commands and data writers.

Test files import from here, never from one another.
"""

import contextlib
import csv
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import jax
import numpy as np
import pytest

from ferjax import config as config_lib
from ferjax.commands import sweep as sweep_command
from ferjax.experiment import sweep
from ferjax.experiment.reproduce import TIMING_FIELDS
from ferjax.labels import CKPLUS_CLASSES, FER2013_CLASSES
from ferjax.models import create_model
from ferjax.recognition.align import Face
from ferjax.run import checkpoint as checkpoint_lib
from ferjax.run.run_dir import RunDir
from ferjax.train import loop
from ferjax.train import setup as setup_lib


REPO = pathlib.Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "experiments" / "quickstart.py")


def tiny_overrides(data_dir: str, **extra: object) -> list[str]:
  """A 2-epoch LeNet-5 run on 1,024 examples: seconds, not minutes."""
  fields = {
      "input.data_dir": data_dir,
      "input.train_split": "train[:1024]",
      "evals": "{'test': {'split': 'test[:300]', 'tta': 'none'}}",
      "num_epochs": 2,
      "batch_size": 64,
      "log_every_steps": 4,
      "checkpoint.every_steps": 5,
      "parallel.cpu_devices": None,
      **extra,
  }
  return [f"{k}={v}" for k, v in fields.items()]


def tiny_config(data_dir: str, **extra: object):
  config = config_lib.load_config(QUICKSTART)
  return config_lib.apply_overrides(config, tiny_overrides(data_dir, **extra))


def final_params(workdir: pathlib.Path) -> dict:
  config = config_lib.from_json((workdir / "config.json").read_text())
  ckpt = checkpoint_lib.Checkpoints(workdir / "checkpoints", read_only=True)
  setup = setup_lib.training(config,
                             loop.Parallel.from_config(config.parallel))
  state = ckpt.restore(ckpt.latest_step(), setup.init_state())
  return jax.device_get(state.params)


def without_timing(events: list[dict]) -> list[dict]:
  """Events without their timing (speed, wall-clock time): what an exact
  resume or a rerun reproduces."""
  return [{k: v for k, v in e.items() if k not in TIMING_FIELDS}
          for e in events]


def run_cli(args: list[str], **kwargs) -> subprocess.Popen:
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen([sys.executable, "-m", "ferjax.cli", *args],
                          cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kwargs)


TIMEOUT = 240


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def launch(workdir: pathlib.Path, overrides: list[str], *,
           processes: int = 2, devices: int = 2,
           heartbeat: int = 60) -> list[subprocess.Popen]:
  """Starts every process of a ``ferjax train`` job on this machine."""
  env = {**os.environ,
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  port = free_port()
  procs = []
  for pid in range(processes):
    cmd = [sys.executable, "-m", "ferjax.cli", "train", "--config",
           QUICKSTART, "--workdir", str(workdir),
           *(f"--config.{o}" for o in overrides)]
    if processes > 1:
      cmd += ["--coordinator", f"localhost:{port}", "--num-processes",
              str(processes), "--process-id", str(pid),
              "--heartbeat-timeout", str(heartbeat), "--init-timeout", "60"]
    procs.append(subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True))
  return procs


def finish(procs: list[subprocess.Popen]) -> list[tuple[str, str]]:
  outputs = []
  for p in procs:
    try:
      out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    outputs.append((out, err))
    assert p.returncode == 0, err[-3000:]
  return outputs


def write_ck_plus(root: pathlib.Path, subjects: int = 6) -> int:
  """Two frames per (subject, class); class c is brighter with c."""
  rng = np.random.default_rng(0)
  count = 0
  for c, name in enumerate(CKPLUS_CLASSES):
    (root / name).mkdir(parents=True)
    for s in range(subjects):
      for frame in (7, 8):
        image = np.clip(rng.normal(30 + 30 * c, 10, (48, 48)), 0, 255)
        cv2.imwrite(str(root / name / f"S{100 + s:03d}_001_{frame:08d}.png"),
                    image.astype(np.uint8))
        count += 1
  return count


def short_config(data_dir: str, **extra: object):
  """One epoch of 8 steps: enough for parameters to move."""
  return tiny_config(data_dir, **{"input.train_split": "train[:512]",
                                  "num_epochs": 1, **extra})


def flat(tree) -> dict:
  return {"/".join(str(k.key) for k in p): np.asarray(v)
          for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def write_ck(root, n_subjects=9, seed=0):
  """CK+48-style files: 3 frames of one sequence per (subject, class)."""
  rng = np.random.default_rng(seed)
  expected = {}
  for subject in range(10, 10 + n_subjects):
    for label in rng.choice(len(CKPLUS_CLASSES), 2, replace=False):
      folder = root / CKPLUS_CLASSES[label]
      folder.mkdir(parents=True, exist_ok=True)
      sequence = int(rng.integers(1, 20))
      for frame in (8, 9, 10):
        image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
        name = f"S{subject:03d}_{sequence:03d}_{frame:08d}.png"
        assert cv2.imwrite(str(folder / name), image)
        expected[(subject, sequence, frame)] = (int(label), image)
  return expected


SHARED_FER2013 = (Path(__file__).resolve().parents[2] / "shared" / "data"
                  / "fer2013")


SPLIT_DIR = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def fer_rows(seed=0, usages=("Training", "PublicTest", "PrivateTest"), n=21):
  """(label, usage, image) rows covering every class and usage."""
  rng = np.random.default_rng(seed)
  return [(i % 7, usages[i % len(usages)],
           rng.integers(0, 256, (48, 48), dtype=np.uint8)) for i in range(n)]


def write_csv(path, rows, header=("emotion", "pixels", "Usage")):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    for label, usage, image in rows:
      by_name = {"emotion": label, "Usage": usage,
                 "pixels": " ".join(map(str, image.ravel()))}
      writer.writerow([by_name[h.strip()] for h in header])
  return path


def write_folders(root, rows):
  for i, (label, usage, image) in enumerate(rows):
    folder = root / SPLIT_DIR[usage] / FER2013_CLASSES[label]
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / f"{usage}_{1000 + i}.png"), image)
  return root


def ferjax_cli(*args: str) -> subprocess.CompletedProcess:
  proc = run_cli(list(args))
  out, err = proc.communicate(timeout=300)
  return subprocess.CompletedProcess(args, proc.returncode, out, err)


PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


class DarkSquares:
  """A real (if simple) detector: dark squares in a light image."""

  def detect(self, image):
    mask = (image[..., 0] < 50).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [Face(tuple(map(float, s[:4])), float(s[4]) / 1e6)
            for s in stats[1:n]]


SIZE = (240, 320)  # (H, W) of the generated videos


def square_frames(n: int = 12, second_from: int = 6) -> tuple[list, list]:
  """Frames (BGR) with a dark 60-pixel square moving right 8 pixels a frame,
  and from frame ``second_from`` a second, still one; and their true boxes."""
  frames, boxes = [], []
  for i in range(n):
    frame = np.full((*SIZE, 3), 230, np.uint8)
    x = 20 + 8 * i
    frame[60:120, x:x + 60] = 0
    truth = [(x, 60, 60, 60)]
    if i >= second_from:
      frame[150:190, 240:280] = 0
      truth.append((240, 150, 40, 40))
    frames.append(frame)
    boxes.append(truth)
  return frames, boxes


# One epoch of 8 steps on one device: seconds per trial.
TINY = [
    "input.train_split=train[:512]",
    "evals={'test': {'split': 'test[:300]', 'tta': 'none'}}",
    "num_epochs=1", "batch_size=64", "log_every_steps=4",
    "parallel.cpu_devices=None", "parallel.num_devices=1",
]


GRID = ("sweep.product(sweep.axis('seed', [0, 1]), "
        "sweep.axis('optimizer.learning_rate', [0.05, 0.1]))")


def sweep_file(directory: pathlib.Path, trials: str) -> str:
  """An experiment file: the tiny quickstart with ``get_sweep`` -> trials."""
  path = directory / "tiny_sweep.py"
  path.write_text(
      "from ferjax import config as config_lib\n"
      "from ferjax.experiment import sweep\n\n"
      "def get_config(arg=None):\n"
      f"  return config_lib.apply_overrides(\n"
      f"      config_lib.load_config({QUICKSTART!r}), {TINY!r})\n\n"
      "def get_sweep(arg=None):\n"
      f"  return {trials}\n")
  return str(path)


def sweep_args(config: str, workdir: pathlib.Path, data_dir: str,
               *extra: str) -> list[str]:
  return ["--config", config, "--workdir", str(workdir),
          f"--config.input.data_dir={data_dir}", *extra]


def run_sweep(args: list[str]) -> tuple[int, str]:
  """``ferjax sweep`` in this process (its trials are processes): code, out."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    code = sweep_command.main(args)
  return code, out.getvalue()


def status(run_dir: pathlib.Path) -> dict:
  return json.loads((run_dir / sweep.STATUS_FILE).read_text())


CLASSES = ["angry", "happy", "neutral"]


def make_run(path: pathlib.Path, *, seed: int, lr: float,
             accuracies: list[float], finished: bool = True,
             command: str = "train", **fields) -> None:
  """A run directory as ``ferjax train`` leaves it, with chosen numbers.

  Eval i (at step 10 * (i + 1)) has accuracy ``accuracies[i]`` and macro F1
  half of it; ``fields`` set config fields (``model__name="vgg"``).
  """
  config = config_lib.base_config()
  config.seed, config.optimizer.learning_rate = seed, lr
  saved = json.loads(config_lib.to_json(config))
  for field, value in fields.items():
    config_lib.set_field(saved, field.replace("__", "."), value)
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps(saved))
  session = {"start_time": "2025-01-01T00:00:00+00:00", "start_step": 0,
             "end_time": "2025-01-01T01:00:00+00:00" if finished else None,
             "command": ["ferjax", command], "versions": {"jax": "0.10.2"},
             "backend": "cpu", "device_count": 1}
  (path / "manifest.json").write_text(json.dumps(
      {"seed": seed,
       "dataset": {"class_names": CLASSES,
                   "split_sizes_used": {"train": 10 * config.batch_size}},
       "sessions": [session]}))
  events = []
  for i, acc in enumerate(accuracies):
    step = 10 * (i + 1)
    events.append({"step": step, "split": "train", "loss": 2.0 / (i + 1),
                   "accuracy": acc, "learning_rate": lr,
                   "images_per_second": 100.0})
    correct = round(30 * acc)
    events.append({
        "step": step, "split": "test", "accuracy": acc, "loss": 1.0 - acc,
        "macro_f1": acc / 2,
        "per_class_accuracy": {c: acc for c in CLASSES},
        "confusion_matrix": [[correct // 3, 10 - correct // 3, 0],
                             [0, correct // 3, 10 - correct // 3],
                             [10 - correct // 3, 0, correct // 3]],
        "num_examples": 30})
  (path / "metrics.jsonl").write_text(
      "".join(json.dumps(e) + "\n" for e in events))


def load_converted(workdir: pathlib.Path) -> tuple[object, dict, dict]:
  """(model, variables, manifest), read as init_from reads a source run."""
  run = RunDir(workdir)
  config = run.read_config()
  manifest = run.read_manifest()
  with run.checkpoints(config) as ckpt:
    variables = ckpt.restore_variables(run.resolve_step(ckpt, "best"))
  model = create_model(config.model.name,
                       num_classes=len(manifest["dataset"]["class_names"]),
                       **dict(config.model.kwargs))
  return model, variables, manifest


def read_only_mount(path: str | Path, *command: str) -> list[str]:
  """``command`` in a private mount namespace where ``path`` is read-only."""
  script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" '
            '&& exec "$@"')
  return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
          script, str(path), *command]


def can_mount() -> bool:
  if shutil.which("unshare") is None:
    return False
  probe = subprocess.run(read_only_mount("/tmp", "true"),
                         capture_output=True)
  return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not can_mount(), reason="needs unshare and user mount namespaces")
