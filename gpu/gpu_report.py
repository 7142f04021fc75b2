"""The tables of ``gpu_check.sh``: one review row, then the summary.

  python gpu/gpu_report.py review-row --family F --workdir W \
      --exit CODE --wall S --budget S --eval EVAL_JSON
  python gpu/gpu_report.py summary --out OUT_DIR [--failures "..."]

``review-row`` prints one JSON line for a family's time-boxed run: PublicTest
accuracy after every epoch (from the run's ``metrics.jsonl``), the median
train images/s, the wall time, and the latest checkpoint's evaluations
(``ferjax eval --json``: single-crop and ten-crop PublicTest). ``summary``
joins ``env.json``, ``tests.txt``, ``throughput.jsonl``,
``throughput_deterministic.jsonl`` and ``review.jsonl`` into ``summary.json`` and a markdown fragment,
``results.md``, with the device named in every heading.
"""

import argparse
import json
import pathlib
import statistics
import sys


def _events(workdir: pathlib.Path) -> list[dict]:
  """The run's metric events; a torn last line (a killed run) is dropped."""
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return []
  events = []
  for line in path.read_text().splitlines():
    try:
      events.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return events


def review_row(args: argparse.Namespace) -> dict:
  events = _events(args.workdir)
  public = [(e["step"], e["accuracy"]) for e in events
            if e["split"] == "public_test"]
  speeds = [e["images_per_second"] for e in events
            if e["split"] == "train" and e.get("images_per_second")]
  try:
    evaluated = json.loads(args.eval.read_text().strip().splitlines()[-1])
  except (OSError, ValueError, IndexError):
    evaluated = {}
  results = evaluated.get("results", {})
  epochs = len(public)
  return {
      "family": args.family, "exit": args.exit, "wall_s": args.wall,
      "budget_s": args.budget, "epochs": epochs,
      "seconds_per_epoch": args.wall / epochs if epochs else None,
      "public_test_by_epoch": [acc for _, acc in public],
      "train_images_per_second": statistics.median(speeds) if speeds else None,
      "checkpoint_step": evaluated.get("step"),
      "final": {name: {k: r.get(k) for k in ("accuracy", "macro_f1")}
                for name, r in results.items()},
  }


def _read_jsonl(path: pathlib.Path) -> list[dict]:
  if not path.exists():
    return []
  rows = []
  for line in path.read_text().splitlines():
    line = line.strip()
    if line.startswith("{"):
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return rows


def _pct(value: float | None) -> str:
  return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
  return "–" if value is None else f"{value:,.{digits}f}"


def markdown(summary: dict) -> str:
  env = summary["env"]
  device = env.get("device_kind", "unknown device")
  # Before the preflight imports jax, only what the node itself has.
  versions = env.get("versions") or env.get("node_versions", {})
  lines = [f"### gpu_check.sh on {device} ({env.get('backend')}), "
           f"jax {versions.get('jax')}, torch {versions.get('torch')}", ""]
  preflight = env.get("preflight", {})
  if preflight:
    lines += ["Preflight: " + ", ".join(
        f"{k} {'ok' if v is True else v}" for k, v in preflight.items()), ""]
  lines += [f"Tests: {summary['tests']}", ""]
  if summary["throughput"]:
    lines += [f"Train step, images/s on {device} (benchmarks/train_step.py, "
              "ferjax over the best PyTorch mode):", "",
              "| model | batch | dtype | ferjax | PyTorch (best mode) | ratio |",
              "|---|---|---|---|---|---|"]
    for row in summary["throughput"]:
      torch_best = max((v for v in (row.get("torch_img_s") or {}).values()
                        if v), default=None)
      lines.append(
          f"| {row.get('model')} | {row.get('batch')} | {row.get('dtype')} "
          f"| {_num(row.get('ferjax_img_s'))} | {_num(torch_best)} "
          f"| {_num(row.get('ratio'), 2)} |")
    lines.append("")
  plain = {(r.get("model"), r.get("batch")): r.get("ferjax_img_s")
           for r in summary["throughput"] if r.get("dtype") == "bfloat16"}
  if summary["deterministic"]:
    lines += ["`parallel.deterministic_gpu` (bfloat16, ferjax images/s):", "",
              "| model | batch | default kernels | deterministic | ratio |",
              "|---|---|---|---|---|"]
    for row in summary["deterministic"]:
      base = plain.get((row.get("model"), row.get("batch")))
      det = row.get("ferjax_img_s")
      ratio = det / base if base and det else None
      lines.append(f"| {row.get('model')} | {row.get('batch')} | {_num(base)} "
                   f"| {_num(det)} | {_num(ratio, 2)} |")
    lines.append("")
  if summary["review"]:
    lines += [f"FER2013 review, seed 0, time-boxed on {device} "
              "(PublicTest; ten-crop of the latest checkpoint):", "",
              "| family | epochs | s/epoch | train img/s | PublicTest by epoch "
              "| final | ten-crop | exit |", "|---|---|---|---|---|---|---|---|"]
    for row in summary["review"]:
      by_epoch = ", ".join(_pct(a) for a in row["public_test_by_epoch"])
      final = row["final"]
      lines.append(
          f"| {row['family']} | {row['epochs']} "
          f"| {_num(row['seconds_per_epoch'], 1)} "
          f"| {_num(row['train_images_per_second'])} | {by_epoch or '–'} "
          f"| {_pct(final.get('public_test', {}).get('accuracy'))} "
          f"| {_pct(final.get('public_test_tencrop', {}).get('accuracy'))} "
          f"| {row['exit']} |")
    lines.append("")
  lines.append(f"Failed parts: {summary['failures'] or 'none'}; "
               f"{summary['seconds']} s in all.")
  return "\n".join(lines) + "\n"


def summary(args: argparse.Namespace) -> dict:
  out = args.out
  env_path = out / "env.json"
  env = json.loads(env_path.read_text()) if env_path.exists() else {}
  tests_path = out / "tests.txt"
  tests = (tests_path.read_text().strip().splitlines() or ["none"])[-1] \
      if tests_path.exists() else "not run"
  result = {"env": env, "tests": tests,
            "throughput": _read_jsonl(out / "throughput.jsonl"),
            "deterministic": _read_jsonl(
                out / "throughput_deterministic.jsonl"),
            "review": _read_jsonl(out / "review.jsonl"),
            "failures": args.failures.split(), "seconds": args.seconds}
  (out / "summary.json").write_text(json.dumps(result, indent=1))
  (out / "results.md").write_text(markdown(result))
  return result


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  row = sub.add_parser("review-row")
  row.add_argument("--family", required=True)
  row.add_argument("--workdir", required=True, type=pathlib.Path)
  row.add_argument("--exit", required=True, type=int)
  row.add_argument("--wall", required=True, type=int)
  row.add_argument("--budget", required=True, type=int)
  row.add_argument("--eval", required=True, type=pathlib.Path)
  total = sub.add_parser("summary")
  total.add_argument("--out", required=True, type=pathlib.Path)
  total.add_argument("--failures", default="")
  total.add_argument("--seconds", type=int, default=0)
  args = parser.parse_args()
  if args.command == "review-row":
    print(json.dumps(review_row(args)))
  else:
    summary(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
