"""CPU stand-ins for the GPU parts of gpu_check.sh, sized by one time scale.

  python gpu/standin.py plan --scale 3 --train-images 28709 \
      --public-test-images 3589 [--families lenet5,...] > plan.json
  python gpu/standin.py verify --plan plan.json --out CHECK_DIR
  python gpu/standin.py timeline --plan plan.json --out CHECK_DIR

``gpu/gpu_rehearse.sh`` runs ``gpu_check.sh`` on this machine's CPU. What
the H100 would compute, the CPU computes ``scale`` times as long: each
family's stand-in epoch is the first N images of FER2013's training split,
N = scale x the family's projected H100 epoch seconds x this CPU's measured
training images/s, and each evaluation a slice of its split sized the same
way (forward only: ``EVAL_SPEEDUP`` times the training rate), so that every
budget of ``gpu_check.sh``, multiplied by the scale, holds the same
work as on the node. The projected H100 seconds are ``review_budget.py``'s
cost model (XLA's forward FLOPs at ``H100_TFLOPS`` effective, plus
``H100_STEP_MS`` a step): assumptions until a GPU measures them.

What does not scale (process start, imports, compilation, FER2013's
preparation, the tests' own CPU trainings) runs here at 1x: ``timeline``
reads the rehearsal's log and projects the node's timeline by replacing the
stand-ins' CPU seconds with the H100 seconds they stand for.
"""

import argparse
import json
import math
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import review_budget

# The H100's assumed speed (review_budget.py's defaults: 5% of the 989 dense
# bfloat16 TFLOP/s of an H100 or H200 SXM, and a per-step floor).
H100_TFLOPS = 50.0
H100_STEP_MS = 3.0

# Training images/s of each family's step on the 2-core development CPU in
# float32 under a load average of 7 (benchmarks/train_step.py, 2026-12-07:
# LeNet-5 1,229 at batch 128, VGG-11-BN 15.3 and GoogLeNet-BN 5.6 at 64;
# AlexNet-BN 3.6 with a stride-1 stem, about 4x the FLOPs of the review's
# stride 2, so 15). A quieter CPU runs the stand-ins faster: a margin.
CPU_TRAIN_IMAGES_PER_SECOND = {"lenet5": 1200.0, "alexnet": 15.0,
                               "vgg11_bn": 15.0, "googlenet": 5.6}
# An evaluation image is a forward pass: a third of a training step's FLOPs.
EVAL_SPEEDUP = 3.0
# The smallest stand-in split: one batch of training, a few evaluated images.
MIN_TRAIN_BATCHES = 1
MIN_EVAL_IMAGES = 16

# gpu_check.sh's parts, by the headings its log prints ("== NAME (...)").
_CPU = r"(?:, (\d+) cpu-s)?"
_PART = re.compile(r"^== (.*) \((\d+) s in, -?\d+ s left" + _CPU + r"\)$")
_FIRST = re.compile(r"^(\w+): first epoch at (\d+) s" + _CPU)
_SECOND = re.compile(r"^(\w+): (\d+) epochs in its share")
_READY = re.compile(r"^FER2013 ready at (\d+) s" + _CPU)
_DONE = re.compile(r"^(\w+): done at (\d+) s" + _CPU)
_TOTAL = re.compile(r"^gpu_check.sh: (\d+) s" + _CPU + ";")

# What gpu_check.sh returns: the node's call brings back at most 8 files.
FILES = ("env.json", "review.jsonl", "tests.txt", "throughput.jsonl",
         "throughput_deterministic.jsonl", "summary.json", "results.md",
         "gpu_check.log")


def h100_seconds(images: int, batch: int, flops_per_image: float) -> float:
  """The cost model: FLOPs at ``H100_TFLOPS`` plus ``H100_STEP_MS`` a step."""
  return (images * flops_per_image / (H100_TFLOPS * 1e12)
          + math.ceil(images / batch) * H100_STEP_MS / 1e3)


def standin_images(seconds: float, images_per_second: float, lo: int,
                   hi: int) -> int:
  """Images the CPU handles in ``seconds``, kept within [lo, hi]."""
  return max(lo, min(hi, int(seconds * images_per_second)))


def family_plan(config: Any, forward_flops: float, scale: int,
                cpu_train_rate: float, available: Mapping[str, int]) -> dict:
  """One family's stand-in: its splits and the H100 seconds they stand for.

  ``available`` is how many images the pack holds of each split (``train``,
  ``public_test``). The training slice comes from the front of ``train`` and
  a validation slice (a split of ``train``) from its end, so they never meet.
  """
  batch = config.batch_size
  train_real = review_budget.split_size(config.input.train_split)
  train_h100 = h100_seconds(train_real, batch, 3 * forward_flops)
  val_room = max(MIN_EVAL_IMAGES, available["train"] // 10)
  train_n = standin_images(scale * train_h100, cpu_train_rate,
                           MIN_TRAIN_BATCHES * batch,
                           available["train"] - val_room)
  splits = {"train": {"split": f"train[:{train_n}]", "images": train_n,
                      "h100_seconds": train_h100}}
  for name, ev in sorted(config.evals.items()):
    crops = 10 if ev.tta == "ten_crop" else 1
    real = review_budget.split_size(ev.split)
    h100 = h100_seconds(real * crops, batch, forward_flops)
    from_train = ev.split.startswith("train")
    hi = val_room if from_train else available["public_test"]
    n = standin_images(scale * h100, EVAL_SPEEDUP * cpu_train_rate / crops,
                       min(MIN_EVAL_IMAGES, hi), hi)
    splits[name] = {
        "split": f"train[-{n}:]" if from_train else f"{ev.split}[:{n}]",
        "images": n, "crops": crops, "h100_seconds": h100,
        "every_epochs": ev.get("every_epochs")}
  return {"splits": splits, "cpu_train_rate": cpu_train_rate,
          "h100_epoch_seconds": sum(s["h100_seconds"] for s in splits.values()
                                    if not s.get("every_epochs"))}


def overrides(family: Mapping[str, Any]) -> list[str]:
  """``ferjax train`` flags that give a family its stand-in splits."""
  flags = []
  for name, split in family["splits"].items():
    field = "input.train_split" if name == "train" else f"evals.{name}.split"
    flags.append(f"--config.{field}={split['split']}")
  return flags


def run_seconds(family: Mapping[str, Any], epochs: int,
                train_rate: float | None = None) -> float:
  """Seconds of a run of ``epochs`` of ``family``'s splits: on the H100, or
  with ``train_rate``, on the CPU that trains that many images/s.

  Every split counts once an epoch but those that run every few epochs,
  which count as often as they run (and after the last epoch).
  """
  seconds = 0.0
  for name, split in family["splits"].items():
    if train_rate is None:
      each = split["h100_seconds"]
    else:
      rate = train_rate if name == "train" else EVAL_SPEEDUP * train_rate
      each = split["images"] * split.get("crops", 1) / rate
    every = split.get("every_epochs")
    seconds += each * (review_budget.evaluations(every, epochs) if every
                       else epochs)
  return seconds


def parse_log(lines: Sequence[str]) -> dict[str, Any]:
  """The log's marks (parts, FER2013 ready, each family's first epoch and
  its end: seconds in and CPU seconds of finished children), the families
  that ran a second time, and the total."""
  marks, second, total = [], set(), None
  for line in lines:
    line = line.rstrip()
    if m := _TOTAL.match(line):
      total = (int(m.group(1)), _int(m.group(2)))
    elif m := _PART.match(line):
      marks.append(("part", m.group(1), int(m.group(2)), _int(m.group(3))))
    elif m := _READY.match(line):
      marks.append(("ready", "", int(m.group(1)), _int(m.group(2))))
    elif m := _FIRST.match(line):
      marks.append(("first", m.group(1), int(m.group(2)), _int(m.group(3))))
    elif m := _DONE.match(line):
      marks.append(("done", m.group(1), int(m.group(2)), _int(m.group(3))))
    elif m := _SECOND.match(line):
      second.add(m.group(1))
  return {"marks": marks, "second_run": second, "total": total}


def _int(text: str | None) -> int | None:
  return None if text is None else int(text)


def project(plan: Mapping[str, Any], log: Mapping[str, Any],
            review: Sequence[Mapping[str, Any]]) -> list[dict]:
  """The rehearsal's timeline part by part, and the H100's it implies.

  Each stretch of the log (a part; in the review, the wait for FER2013,
  each family's one-epoch first run, then each family's second run if any
  with its ``ferjax eval`` and row) counts at the smaller of its wall and
  its children's CPU seconds: what it costs an unloaded host with a core to
  spare (the node has 16). A family's stand-in compute (its epochs at the
  plan's training images/s: ``scale`` x their H100 seconds, but for the
  slices' bounds) is then replaced by the H100 seconds it stands for. The
  rest (process starts, compilation, the tests' CPU-sized trainings) counts
  as measured: it does not scale.
  """
  rows = {row["family"]: row for row in review}
  marks = log["marks"] + [("end", "", *log["total"])]
  timeline = []
  for (kind, name, t, cpu), (end_kind, end_name, t_end, cpu_end) in zip(
      marks, marks[1:]):
    wall = t_end - t
    used = cpu_end - cpu if cpu is not None and cpu_end is not None else None
    host = wall if used is None else min(wall, used)
    row = {"part": name, "wall_s": wall, "cpu_s": used, "standin_s": 0.0,
           "h100_work_s": 0.0}
    runs = []
    if end_kind == "ready":
      row["part"] = "review: waiting for FER2013's preparation"
    elif end_kind == "first":
      row["part"] = f"review {end_name}: first run, 1 epoch"
      runs = [1]
    elif end_kind == "done":
      second = end_name in log["second_run"] and end_name in rows
      if second:
        runs = [rows[end_name]["epochs"]]
      row["part"] = (f"review {end_name}: " + (
          f"second run, {runs[0]} epochs, " if second else "") + "eval, row")
    elif kind != "part":
      row["part"] = "review: after the last family"
    if runs:
      spec = plan["families"][end_name]
      h100 = sum(run_seconds(spec, n) for n in runs)
      # At the rate the plan assumed: a stand-in epoch of a few steps logs
      # no rate of its own worth the name.
      standin = min(host, sum(run_seconds(spec, n, spec["cpu_train_rate"])
                              for n in runs))
      row.update(standin_s=round(standin, 1), h100_work_s=round(h100, 1))
      host += h100 - standin
    row["h100_s"] = round(host, 1)
    timeline.append(row)
  return timeline


def verify(plan: Mapping[str, Any], files: Sequence[str],
           summary: Mapping[str, Any] | None) -> list[str]:
  """What the rehearsal's check folder lacks of the issue's acceptance."""
  problems = [f"{name} missing" for name in FILES if name not in files]
  problems += [f"{name}: not one of the node's files" for name in files
               if name not in FILES]
  if summary is None:
    return problems
  budget = plan["budget_s"] * plan["scale"]
  if summary["seconds"] > budget:
    problems.append(f"{summary['seconds']} s: over the budget of {budget} s")
  rows = {row["family"]: row for row in summary["review"]}
  for family in plan["families"]:
    if family not in rows:
      problems.append(f"review: no row for {family}")
    elif not rows[family]["epochs"]:
      problems.append(f"review: {family} has no evaluated epoch "
                      f"(exit {rows[family]['exit']})")
  return problems


def markdown(timeline: Sequence[Mapping[str, Any]], scale: int,
             budget: int) -> str:
  lines = ["| part | rehearsal: wall, s | CPU, s | of which stand-in GPU "
           "work, s | the H100 work it stands for, s | projected H100, s |",
           "|---|---|---|---|---|---|"]
  for row in timeline:
    cpu = "–" if row["cpu_s"] is None else row["cpu_s"]
    lines.append(f"| {row['part']} | {row['wall_s']} | {cpu} "
                 f"| {row['standin_s']} | {row['h100_work_s']} "
                 f"| {row['h100_s']:.0f} |")
  wall = sum(r["wall_s"] for r in timeline)
  cpu = sum(r["cpu_s"] or 0 for r in timeline)
  lines.append(f"| **total** | **{wall}** of {budget * scale} (scale "
               f"{scale}) | {cpu} | "
               f"{sum(r['standin_s'] for r in timeline):.0f} | "
               f"{sum(r['h100_work_s'] for r in timeline):.0f} | "
               f"**{sum(r['h100_s'] for r in timeline):.0f}** of {budget} |")
  return "\n".join(lines) + "\n"


def _plan(args: argparse.Namespace) -> int:
  from ferjax import config as config_lib
  from ferjax.models import summary
  module, _ = config_lib.load_experiment(str(review_budget.REVIEW))
  families = args.families.split(",") if args.families else list(
      module.FAMILIES)
  available = {"train": args.train_images,
               "public_test": args.public_test_images}
  plan = {"scale": args.scale, "budget_s": args.budget,
          "h100_tflops": H100_TFLOPS, "h100_step_ms": H100_STEP_MS,
          "available": available, "families": {}}
  for family in families:
    config = config_lib.load_config(f"{review_budget.REVIEW}:family={family}")
    shape = (*config.input.image_size, config.input.channels)
    flops = summary.model_summary(
        config.model.name, shape, 7,
        kwargs=dict(config.model.get("kwargs") or {}))["flops"]
    spec = family_plan(config, flops, args.scale,
                       CPU_TRAIN_IMAGES_PER_SECOND[family], available)
    spec["model"] = config.model.name
    spec["overrides"] = overrides(spec)
    plan["families"][family] = spec
  json.dump(plan, sys.stdout, indent=1)
  print()
  return 0


def _timeline(args: argparse.Namespace) -> int:
  plan = json.loads(args.plan.read_text())
  summary = json.loads((args.out / "summary.json").read_text())
  log = parse_log((args.out / "gpu_check.log").read_text().splitlines())
  if log["total"] is None:  # A run cut before its last line.
    log["total"] = (summary["seconds"], None)
  timeline = project(plan, log, summary["review"])
  print(markdown(timeline, plan["scale"], plan["budget_s"]), end="")
  return 0


def _verify(args: argparse.Namespace) -> int:
  plan = json.loads(args.plan.read_text())
  path = args.out / "summary.json"
  summary = json.loads(path.read_text()) if path.exists() else None
  problems = verify(plan, sorted(p.name for p in args.out.iterdir()), summary)
  for problem in problems:
    print(f"rehearsal: {problem}")
  if not problems:
    print(f"rehearsal: the {len(FILES)} files, every family evaluated, "
          f"{summary['seconds']} s of {plan['budget_s'] * plan['scale']} s")
  return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  plan = sub.add_parser("plan")
  plan.add_argument("--scale", type=int, required=True,
                    help="CPU seconds per H100 second (an integer: "
                    "gpu_check.sh multiplies its times by it)")
  plan.add_argument("--budget", type=int, default=480,
                    help="the node's budget, s (gpu_check.sh)")
  plan.add_argument("--train-images", type=int, required=True)
  plan.add_argument("--public-test-images", type=int, required=True)
  plan.add_argument("--families", default="")
  timeline = sub.add_parser("timeline")
  timeline.add_argument("--plan", type=pathlib.Path, required=True)
  timeline.add_argument("--out", type=pathlib.Path, required=True)
  verify_parser = sub.add_parser("verify")
  verify_parser.add_argument("--plan", type=pathlib.Path, required=True)
  verify_parser.add_argument("--out", type=pathlib.Path, required=True)
  parsed = parser.parse_args(argv)
  return {"plan": _plan, "timeline": _timeline,
          "verify": _verify}[
      parsed.command](parsed)


if __name__ == "__main__":
  sys.exit(main())
