"""What a CPU smoke run's report must say: that it is one, and chance.

  python gpu/smoke_note.py WORKDIR [--into WORKDIR/report.md]

``gpu_review.sh --runlocal`` trains every trial one epoch on 128 images:
its accuracies show that each family trains and evaluates, nothing about
how well. This prints that, and the chance levels of every evaluated split
from the trials' own confusion matrices (the classes' counts in exactly the
images evaluated): uniform guessing, 1 / classes, and always answering the
split's most common class. ``--into`` puts the note at the top of the
report's markdown (a file ``ferjax report`` writes anew each time).
"""

import argparse
import pathlib
import sys

from ferjax import atomic
from ferjax.run.run_dir import RunDir, read_metrics

TITLE = "SMOKE TEST"


def chance_lines(workdir: pathlib.Path) -> list[str]:
  """One line per evaluated split of the sweep's first finished trial."""
  for metrics in sorted(workdir.glob("*/metrics.jsonl")):
    run = metrics.parent
    classes = RunDir(run).read_manifest()["dataset"]["class_names"]
    lines = []
    for event in read_metrics(run):
      if event["split"] == "train" or not event.get("confusion_matrix"):
        continue
      counts = [sum(row) for row in event["confusion_matrix"]]
      total = sum(counts)
      top = max(range(len(counts)), key=counts.__getitem__)
      lines.append(
          f"chance on {event['split']} ({total} images): uniform guessing "
          f"1/{len(classes)} = {1 / len(classes):.3f}, always "
          f"'{classes[top]}' {counts[top] / total:.3f}")
    if lines:
      return list(dict.fromkeys(lines))  # Every evaluation: same images.
  return []


def note(workdir: pathlib.Path) -> str:
  return "\n".join([
      f"**{TITLE}** (`gpu_review.sh --runlocal`): every trial one epoch on "
      "128 training images, evaluated on 64 (ten-crop on 16), in float32 on "
      "the CPU. The accuracies below show that each family trains and "
      "evaluates end to end; they say nothing about how well it learns "
      "(the full sweep on a GPU does).",
      "", *(f"- {line}" for line in chance_lines(workdir)), ""])


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("workdir", type=pathlib.Path)
  parser.add_argument("--into", type=pathlib.Path,
                      help="markdown file to put the note at the top of")
  args = parser.parse_args(argv)
  text = note(args.workdir)
  print(text)
  if args.into is not None and args.into.exists():
    report = args.into.read_text()
    if not report.startswith(f"**{TITLE}**"):
      atomic.write_text(args.into, f"{text}\n{report}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
