"""ferjax from Python: train from a config, read the run, evaluate it,
recognise the faces of a photo, in a few lines each.

  python examples/python_api.py PHOTO [--workdir runs/python_api]
      [--data-dir DIR]

Trains the quickstart experiment (LeNet-5 on synthetic_fer, which needs no
download; shortened here to one epoch on 2,048 images, under a minute on a
CPU), then evaluates its best checkpoint, and recognises PHOTO with the
model that ships with ferjax (a model trained on drawn faces says little
about photos). Running it again resumes the finished run: nothing retrains.
"""

import argparse
import pathlib

import ferjax
from ferjax import config as config_lib
from ferjax.commands import tables
from ferjax.evaluate import run_evaluation
from ferjax.run.run_dir import RunDir
from ferjax.train import loop, parallel

QUICKSTART = pathlib.Path(__file__).parents[1] / "experiments" / "quickstart.py"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("photo", help="an image file with faces")
  parser.add_argument("--workdir", default="runs/python_api")
  parser.add_argument("--data-dir", help="TFDS data dir (default: ~/"
                      "tensorflow_datasets); synthetic_fer is built there")
  args = parser.parse_args()

  # 1. Train from a config: the experiment file, then overrides as on the
  # command line (``--config.FIELD=VALUE`` without ``--config.``).
  config = config_lib.load_config(str(QUICKSTART))
  config = config_lib.apply_overrides(config, [
      "num_epochs=1", "input.train_split=train[:2048]",
      *([f"input.data_dir={args.data_dir}"] if args.data_dir else [])])
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  loop.train_and_evaluate(config, args.workdir)

  # 2. Read the run: what `ferjax train` left behind, as Python objects.
  run = RunDir(args.workdir)
  print(f"{run.status()} run of {run.read_config().model.name}")
  for event in run.events():
    if event["split"] == "test":
      print(f"  step {event['step']}: test accuracy {event['accuracy']:.4f}")

  # 3. Evaluate its best checkpoint (on the run's own evals, or any split).
  result = run_evaluation.evaluate_run(args.workdir, split="test[:500]")
  print(tables.format_results(result))

  # 4. Recognise a photo with the bundled FER2013 model.
  faces = ferjax.recognize(args.photo)
  print(f"{args.photo}: {len(faces)} face(s)")
  for face in faces:
    x, y, w, h = face.box
    print(f"  {face.label} ({face.scores[face.label]:.2f}) at x={x:.0f} "
          f"y={y:.0f}, {w:.0f}x{h:.0f} pixels")


if __name__ == "__main__":
  main()
