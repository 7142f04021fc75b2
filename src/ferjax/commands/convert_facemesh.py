"""``ferjax convert facemesh SOURCE OUT``: FaceMesh's weights from MediaPipe."""

import argparse
import os
import sys
from collections.abc import Sequence

from ferjax.convert.facemesh_tflite import convert


def main(argv: Sequence[str]) -> int:
  """Runs `ferjax convert facemesh SOURCE OUT`; 2 on unusable input."""
  parser = argparse.ArgumentParser(
      prog="ferjax convert facemesh",
      description="Turn MediaPipe's face_landmark.tflite (or the "
      "mediapipe==0.10.21 wheel holding it) into the weights of "
      "ferjax.landmarks.facemesh.FaceMesh.")
  parser.add_argument("source", type=os.path.expanduser,
                      help="mediapipe-0.10.21-*.whl or face_landmark.tflite")
  parser.add_argument("out", type=os.path.expanduser,
                      help="new directory to create")
  args = parser.parse_args(argv)
  try:
    out = convert(args.source, args.out,
                  # Names, not this machine's paths, in PROVENANCE.txt.
                  argv=["ferjax", "convert", "facemesh",
                        *(os.path.basename(a) for a in argv)])
  except (ImportError, FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"ferjax convert facemesh: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {out}")
  return 0
