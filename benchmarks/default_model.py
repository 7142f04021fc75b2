"""The bundled default model against LeNet-5 on the default video path.

    python benchmarks/default_model.py [--models fer2013_resnet,fer2013_lenet5]
        [--repeats 3] [--max-frames N]

``ferjax predict``'s video path as it runs by default (detector ``auto``,
detection every ``DETECT_EVERY`` frames, tracking, alignment, classification)
over the shared clip (../shared/data/video/short_hamilton_clip.mp4), decoded
once before timing, with each bundled model in turn: a warm-up round, then
``--repeats`` rounds alternating the models so that a machine shared with
other jobs slows them alike. Prints frames/s per model (median) and the
ratio to the first, and the classifier alone on a batch of 32 aligned crops
(crops/s, median of 20 calls). The issue-36 bar: the default path keeps at
least 30 frames/s with the default model.
"""

import argparse
import os
import pathlib
import statistics
import time

import numpy as np

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="fer2013_resnet,fer2013_lenet5",
                      help="bundled model names (ferjax.pretrained.MODELS)")
  parser.add_argument("--video", type=pathlib.Path,
                      default=SHARED / "video" / "short_hamilton_clip.mp4")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--max-frames", type=int)
  args = parser.parse_args()
  if not args.video.is_file():
    parser.error(f"--video {args.video}: no such file")

  from ferjax import pretrained
  from ferjax.recognition import stream, video
  from ferjax.recognition.classifier import load_classifier
  names = args.models.split(",")
  unknown = [n for n in names if n not in pretrained.MODELS]
  if unknown:
    parser.error(f"--models: unknown {unknown}; expected names from "
                 f"{', '.join(pretrained.MODELS)}")
  classifiers = {n: load_classifier(pretrained.path(n)) for n in names}
  frames = list(video.read_frames(args.video, max_frames=args.max_frames))

  times = {n: [] for n in names}
  faces = {}
  for rep in range(args.repeats + 1):  # Round 0 compiles, untimed.
    for name, classifier in classifiers.items():
      s = stream.FaceStream(classifier, "auto",
                            detect_every=stream.DETECT_EVERY)
      start = time.perf_counter()
      faces[name] = sum(len(s.process(f.image, f.index, f.time).faces)
                        for f in frames)
      if rep:
        times[name].append(time.perf_counter() - start)

  crops = np.random.default_rng(0).integers(0, 256, (32, 48, 48, 1),
                                            np.uint8)
  crop_rate = {}
  for name, classifier in classifiers.items():
    classifier.predict(crops)
    calls = []
    for _ in range(20):
      start = time.perf_counter()
      classifier.predict(crops)
      calls.append(time.perf_counter() - start)
    crop_rate[name] = len(crops) / statistics.median(calls)

  print(f"default video path (auto, detect every {stream.DETECT_EVERY}), "
        f"{len(frames)} frames, {args.repeats} alternating rounds, load "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
  first = None
  for name in names:
    fps = len(frames) / statistics.median(times[name])
    first = first or fps
    print(f"{name:18s} {fps:7.1f} frames/s  {fps / first:5.2f}x  "
          f"{faces[name]} faces  classifier alone "
          f"{crop_rate[name]:8.0f} crops/s")


if __name__ == "__main__":
  main()
