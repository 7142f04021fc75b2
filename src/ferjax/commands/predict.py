"""``ferjax predict``: faces in photos, videos and cameras, and their labels."""

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferjax import commands
from ferjax import compilation_cache
from ferjax import finite_json
from ferjax import pretrained
from ferjax.commands import run_dirs
from ferjax.recognition.classifier import (FaceClassifier, NonFiniteScores,
                                           load_classifier, load_ensemble)
from ferjax.recognition.detectors import DETECTORS
from ferjax.recognition.inputs import check_out_dir
from ferjax.recognition.predict import MAX_PIXELS, Tally, predict
from ferjax.recognition.stream import DETECT_EVERY, SMOOTH
from ferjax.recognition.video import leftover_partials


def _model_dir(workdir: str | None) -> str:
  """The run to classify with; says so when it is the bundled model."""
  if workdir is None:
    workdir = str(pretrained.path())
    default = pretrained.MODELS[pretrained.DEFAULT]
    print(f"ferjax predict: no --workdir: using the bundled "
          f"{pretrained.DEFAULT}, {default.summary} (see ferjax/pretrained)",
          file=sys.stderr)
  return workdir


def _warn_if_synthetic(workdir: str) -> None:
  from ferjax.run.run_dir import RunDir
  if RunDir(workdir).read_config().input.dataset == "synthetic_fer":
    print(f"ferjax predict: warning: {workdir} was trained on synthetic_fer "
          "(drawn faces), not on real faces: its labels of photos mean "
          "little; train on fer2013, or omit --workdir for the bundled "
          "model", file=sys.stderr)


def _warn(message: str) -> None:
  print(f"ferjax predict: warning: {message}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
  print(f"ferjax predict: {message}", file=sys.stderr, flush=True)


def run(images: Sequence[str | int], classifier: FaceClassifier,
        detector: str = "auto", out_dir: str | Path | None = None, *,
        max_pixels: int = MAX_PIXELS, explain: bool = False,
        **video_options: Any) -> int:
  """Prints a JSON line per image file and per video frame, in the order of
  ``images`` (``recognition.predict.predict``'s records), warnings and
  progress on stderr; 1 if no input succeeded or an annotated video could
  not be written, else 0."""
  tally = Tally()
  for record in predict(images, classifier, detector, out_dir, tally=tally,
                        max_pixels=max_pixels, explain=explain, note=_note,
                        **{"warn": _warn, "progress": _note, **video_options}):
    print(finite_json.dumps(record), flush=True)
  return tally.status


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ferjax predict",
      description="Detect faces and classify their expressions in images, "
      "videos and camera streams.")
  parser.add_argument("--workdir", type=os.path.expanduser, action="append",
                      help="training run directory holding a checkpoint "
                      f"(default: the bundled {pretrained.DEFAULT}); "
                      "repeat it for an ensemble (mean softmax, each run "
                      "with its own preprocessing; the runs must classify "
                      "the same labels)")
  run_dirs.add_pretrained(parser)
  parser.add_argument("images", nargs="*", metavar="INPUT",
                      type=os.path.expanduser,
                      help="image or video files (.mp4, .avi, .mov, .mkv, "
                      "...), or directories searched for both")
  parser.add_argument("--camera", type=int, metavar="N",
                      help="also read camera N (0: the first) until Ctrl-C, "
                      "--end or --max-frames")
  parser.add_argument("--detector", choices=DETECTORS, default="auto",
                      help="face detector (default: auto, MTCNN at two "
                      "resolutions)")
  parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                      metavar="N", help="refuse images whose header declares "
                      f"more than N pixels (default {MAX_PIXELS:,}: a guard "
                      "against decompression bombs)")
  parser.add_argument("--out", type=os.path.expanduser,
                      help="directory for annotated copies of the images and "
                      "videos; without it only the JSON lines are written "
                      "(to standard output)")
  parser.add_argument("--explain", action="store_true",
                      help="overlay each face's Grad-CAM map (of its label) "
                      "on the annotated images and frames (needs --out or "
                      "--show; one model, not an ensemble)")
  parser.add_argument("--landmarks", action="store_true",
                      help="also run FaceMesh on every face: its 468 points "
                      "(image pixels) and face score in the JSON (\"mesh\"), "
                      "its contours on the annotated copies")
  video = parser.add_argument_group("videos and cameras")
  video.add_argument("--start", type=float, default=0.0, metavar="SECONDS",
                     help="skip the frames before this time (files)")
  video.add_argument("--end", type=float, metavar="SECONDS",
                     help="stop at this time")
  video.add_argument("--max-frames", type=int, metavar="N",
                     help="process at most N frames of each video")
  video.add_argument("--detect-every", type=int, default=DETECT_EVERY,
                     metavar="N", help="run the full face detector every N "
                     "frames and follow the faces in between (1: every "
                     f"frame; default {DETECT_EVERY})")
  video.add_argument("--smooth", type=float, default=SMOOTH, metavar="FRAMES",
                     help="average each face's scores over about FRAMES "
                     f"frames (exponential; 0: off; default {SMOOTH})")
  video.add_argument("--show", action="store_true",
                     help="show the annotated frames in a window (q quits)")
  parser.add_argument("--no-compile-cache", action="store_true",
                      help="do not use the persistent compilation cache "
                      "(default: $XDG_CACHE_HOME/ferjax/jax or "
                      f"${compilation_cache.ENV})")
  return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
  """Flags that contradict one another or their ranges: a usage error."""
  if not args.images and args.camera is None:
    parser.error("give image or video files, directories, or --camera N")
  minimums = [("--start", args.start, 0), ("--max-frames", args.max_frames, 1),
              ("--detect-every", args.detect_every, 1),
              ("--smooth", args.smooth, 0), ("--camera", args.camera, 0),
              ("--max-pixels", args.max_pixels, 1)]
  for flag, value, low in minimums:
    if value is not None and value < low:
      parser.error(f"{flag} must be >= {low}, got {value:g}")
  if args.explain and args.out is None and not args.show:
    parser.error("--explain draws on the annotated copies: give --out DIR "
                 "(or --show)")
  if args.end is not None and args.end <= args.start:
    parser.error(f"--end must be after --start ({args.start:g}), got "
                 f"{args.end:g}")


def _classifier(args: argparse.Namespace) -> FaceClassifier:
  """The run's classifier, or the ensemble of the runs'."""
  if args.workdir or args.pretrained:
    workdirs = run_dirs.from_args(args)
  else:
    workdirs = [_model_dir(None)]
  if len(workdirs) > 1 and args.explain:
    raise ValueError("--explain: one model's saliency maps; an ensemble "
                     "(several --workdir) has no single map")
  classifier = (load_ensemble(workdirs) if len(workdirs) > 1
                else load_classifier(workdirs[0]))
  for workdir in workdirs:
    _warn_if_synthetic(workdir)
  return classifier


def _predict(args: argparse.Namespace) -> int:
  check_out_dir(args.out, args.images)
  if not args.no_compile_cache:
    compilation_cache.enable(compilation_cache.default_dir())
  # Before --out is created: a refused model (or ensemble) leaves nothing.
  classifier = _classifier(args)
  if args.out is not None:
    try:
      Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise ValueError(f"--out {args.out}: {e.strerror or e}") from None
  inputs = list(args.images) + ([args.camera] if args.camera is not None
                                else [])
  if args.out is not None:
    for leftover in leftover_partials(args.out):
      _warn(f"{leftover}: an unfinished video of a killed run (or of one "
            "still writing); delete it when no ferjax predict writes there")
  # SIGTERM (a scheduler's, or kill) stops like Ctrl-C: videos are closed.
  previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
  try:
    return run(inputs, classifier, args.detector, args.out,
               max_pixels=args.max_pixels, explain=args.explain,
               start=args.start, end=args.end, max_frames=args.max_frames,
               detect_every=args.detect_every, smooth=args.smooth,
               show=args.show, landmarks=args.landmarks)
  except NonFiniteScores as e:  # The model's fault, not an input's.
    raise ValueError(str(e)) from None
  except KeyboardInterrupt:
    print("ferjax predict: interrupted; annotated output written so far is "
          "kept (a video cut short as NAME.partial.EXT)", file=sys.stderr)
    return 130
  finally:
    signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
  """Runs `ferjax predict`; 0 unless the run dir is unusable or every input
  failed (130 when interrupted)."""
  parser = build_parser()
  args = parser.parse_args(run_dirs.pretrained_apart(
      sys.argv[1:] if argv is None else argv))
  _check(parser, args)
  return commands.reporting_errors("predict", lambda: _predict(args))
