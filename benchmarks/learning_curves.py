"""Learning curves of ferjax and its PyTorch twin, side by side, any family.

  python benchmarks/learning_curves.py --config experiments/fer2013_vgg.py:depth=11 \\
      --data-dir /work/tfds-parity --train-split 'train[:4096]' \\
      --steps 300 --log-every 25 --seeds 0,1,2 --out runs/curves_vgg11bn.json

For each seed both frameworks start from the same weights (ferjax's
initialisation of that seed, or with ``--init torch`` the twin's PyTorch
default one, converted), see the same batches in the same
order (ferjax's epoch permutation of the seed) and use the config's optimizer
and schedule (``side_by_side.py``). Augmentation (``--augment config``) is
ferjax's, applied once on the host so both frameworks train on the very same
pixels; ``--no`` switches single parts off (``--no erasing,crop``), and
``--dropout R`` sets every dropout rate of both models (default: the models'
own rates, with independent masks). Printed and written as JSON: mean and
std over seeds of the training loss averaged over each ``--log-every``
window, and after each epoch of the (sliced) training split the validation
accuracy, macro F1 and the share of the most predicted class (1.0: the model
predicts one class for everything). ``--plot PNG`` draws both curves, mean
± std over the seeds, per framework.
"""

import argparse
import io
import json
import pathlib
import sys
import time

import jax
import numpy as np
from matplotlib.figure import Figure

from ferjax import atomic
from ferjax import config as config_lib
from ferjax.data import augment as augment_lib
from ferjax.data import loading
from ferjax.data import preprocess
from ferjax.train import input_pipeline

import side_by_side


def _macro_f1(labels: np.ndarray, predictions: np.ndarray, k: int) -> float:
  f1 = []
  for c in range(k):
    tp = np.sum((predictions == c) & (labels == c))
    denominator = np.sum(predictions == c) + np.sum(labels == c)
    f1.append(2 * tp / denominator if denominator else 0.0)
  return float(np.mean(f1))


def _evaluate(side, images: np.ndarray, labels: np.ndarray,
              k: int) -> dict[str, float]:
  predictions = np.concatenate([side.logits(images[i:i + 256]).argmax(-1)
                                for i in range(0, len(images), 256)])
  return {"accuracy": float(np.mean(predictions == labels)),
          "macro_f1": _macro_f1(labels, predictions, k),
          "top_share": float(np.bincount(predictions, minlength=k).max()
                             / len(predictions))}


def _augmented(images: np.ndarray, rows: np.ndarray, cfg, seed: int,
               step: int) -> np.ndarray:
  """The batch's pixels after ferjax's augmentation, x255 as float32."""
  x = preprocess.to_unit_float(images[rows])
  key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
  return np.asarray(augment_lib.augment(key, x, cfg)) * np.float32(255.0)


def run_seed(config, args, train, val, k: int, seed: int) -> dict:
  """Both frameworks' curves for one seed."""
  batch = config.batch_size
  steps_per_epoch = len(train.labels) // batch
  model_kwargs = dict(config.model.get("kwargs") or {})
  if args.dropout is not None:
    name = config.model.name
    model_kwargs.update(
        {} if name == "lenet5" else
        {"dropout": args.dropout, "aux_dropout": args.dropout}
        if name.startswith("googlenet") else {"dropout": args.dropout})
  mean, std = preprocess.channel_stats([train.images])
  augment = dict(config.input.get("augment") or {}) if args.augment == "config" else {}
  for part in args.no:
    augment.pop(part, None)
  input_shape = train.images.shape[1:]
  if args.init == "ferjax":
    variables = side_by_side.initial_variables(
        config.model.name, model_kwargs, num_classes=k,
        input_shape=input_shape, seed=seed)
  else:
    variables = side_by_side.torch_initial_variables(
        config.model.name, num_classes=k, input_shape=input_shape, seed=seed,
        classifier_width=model_kwargs.get("classifier_width", 4096))
  # Both sides read the same float rows: the step's batch, augmented or not.
  data = side_by_side.Data(np.zeros((batch, *input_shape), np.float32),
                           np.zeros((batch,), np.int64), tuple(mean),
                           tuple(std))
  sides = {}
  common = dict(num_classes=k, steps_per_epoch=steps_per_epoch,
                total_steps=args.steps, variables=variables,
                aux_weight=config.loss.aux_weight)
  if "ferjax" in args.frameworks:
    sides["ferjax"] = side_by_side.FerjaxSide(
        config.model.name, model_kwargs, config.optimizer, data, batch=batch,
        seed=seed, **common)
  if "torch" in args.frameworks:
    sides["torch"] = side_by_side.TorchSide(
        config.model.name, config.optimizer, data,
        dropout=args.dropout, **common)
  curves = {name: {"steps": [], "train_loss": [], "train_accuracy": [],
                   "epochs": [], "val": []} for name in sides}
  window = {name: [] for name in sides}
  start = time.time()
  for step in range(args.steps):
    epoch, within = divmod(step, steps_per_epoch)
    perm = input_pipeline.epoch_permutation(seed, epoch, len(train.labels))
    rows = perm[within * batch:(within + 1) * batch]
    if augment:
      data.images = _augmented(train.images, rows, augment, seed, step)
    else:
      data.images = train.images[rows].astype(np.float32)
    data.labels = train.labels[rows].astype(np.int64)
    for name, side in sides.items():
      window[name].append(side.step(np.arange(batch)))
    if (step + 1) % args.log_every == 0:
      for name in sides:
        curves[name]["steps"].append(step + 1)
        for metric in ("loss", "accuracy"):
          curves[name][f"train_{metric}"].append(
              float(np.mean([m[metric] for m in window[name]])))
        window[name] = []
      print(f"seed {seed} step {step + 1} " + " ".join(
          f"{n}: loss {curves[n]['train_loss'][-1]:.4f}" for n in sides)
            + f" ({time.time() - start:.0f}s)", flush=True)
    if (step + 1) % steps_per_epoch == 0 or step + 1 == args.steps:
      for name, side in sides.items():
        result = _evaluate(side, val.images, val.labels, k)
        curves[name]["epochs"].append((step + 1) / steps_per_epoch)
        curves[name]["val"].append(result)
        if config.optimizer.schedule == "plateau":
          side.set_plateau(result["accuracy"], **(
              {"opt": config.optimizer} if name == "ferjax" else {}))
        print(f"seed {seed} epoch {(step + 1) / steps_per_epoch:.2f} {name}: "
              + " ".join(f"{m} {v:.4f}" for m, v in result.items()),
              flush=True)
  return curves


def summarise(per_seed: list[dict]) -> dict:
  """Mean and std over seeds of every curve, per framework."""
  out = {}
  for name in per_seed[0]:
    runs = [r[name] for r in per_seed]
    out[name] = {
        "steps": runs[0]["steps"],
        "train_loss_mean": np.mean([r["train_loss"] for r in runs], 0).tolist(),
        "train_loss_std": np.std([r["train_loss"] for r in runs], 0).tolist(),
        "epochs": runs[0]["epochs"],
        **{f"val_{m}_{stat}": getattr(np, stat)(
            [[v[m] for v in r["val"]] for r in runs], 0).tolist()
           for m in ("accuracy", "macro_f1", "top_share")
           for stat in ("mean", "std")}}
  return out


def plot(summary: dict, title: str) -> bytes:
  """PNG: training loss by step and validation accuracy by epoch, mean ±
  std over the seeds, one colour per framework."""
  fig = Figure(figsize=(10, 4))
  loss_ax, acc_ax = fig.subplots(1, 2)
  for name, curve in summary.items():
    steps = np.asarray(curve["steps"])
    mean, std = (np.asarray(curve[f"train_loss_{s}"]) for s in ("mean", "std"))
    loss_ax.plot(steps, mean, label=name)
    loss_ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    acc_ax.errorbar(curve["epochs"], curve["val_accuracy_mean"],
                    yerr=curve["val_accuracy_std"], marker="o", capsize=3,
                    label=name)
  loss_ax.set(xlabel="step", ylabel="training loss (window mean)")
  acc_ax.set(xlabel="epoch", ylabel="validation accuracy")
  for ax in (loss_ax, acc_ax):
    ax.legend()
    ax.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  return buffer.getvalue()


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--data-dir", required=True)
  parser.add_argument("--manual-dir", default=None)
  parser.add_argument("--train-split", default="train[:4096]")
  parser.add_argument("--val-split", default="train[90%:]")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--log-every", type=int, default=25)
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--frameworks", default="ferjax,torch")
  parser.add_argument("--augment", choices=("config", "none"),
                      default="config")
  parser.add_argument("--no", default="",
                      help="augmentation parts to switch off, e.g. erasing")
  parser.add_argument("--dropout", type=float, default=None)
  parser.add_argument("--init", choices=("ferjax", "torch"), default="ferjax",
                      help="start both from ferjax's initialisation or from "
                      "the twin's PyTorch default one")
  parser.add_argument("--out", default=None, help="JSON file to write")
  parser.add_argument("--plot", default=None, help="PNG file to write")
  args, extra = parser.parse_known_args(argv)
  args.frameworks = args.frameworks.split(",")
  args.no = [p for p in args.no.split(",") if p]
  config = config_lib.apply_overrides(
      config_lib.load_config(args.config),
      config_lib.split_override_args(extra))
  builder = loading.prepared_builder(
      config.input.dataset, data_dir=args.data_dir,
      manual_dir=args.manual_dir, builder_config=config.input.builder_config)
  train = loading.read_split(builder, args.train_split)
  val = loading.read_split(builder, args.val_split)
  if tuple(config.input.image_size) != train.images.shape[1:3]:
    raise SystemExit("learning_curves.py compares models at the stored image "
                     f"size {train.images.shape[1:3]}; the config asks for "
                     f"{tuple(config.input.image_size)}")
  k = len(loading.dataset_info(builder).class_names)
  per_seed = [run_seed(config, args, train, val, k, int(s))
              for s in args.seeds.split(",")]
  result = {"argv": argv, "model": config.model.name,
            "summary": summarise(per_seed), "per_seed": per_seed}
  print(json.dumps(result["summary"]))
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(pathlib.Path(args.out), json.dumps(result, indent=1))
  if args.plot:
    pathlib.Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(pathlib.Path(args.plot), plot(
        result["summary"], f"{config.model.name}, seeds {args.seeds}, "
        f"{args.train_split}"))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
