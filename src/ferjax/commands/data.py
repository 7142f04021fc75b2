"""``ferjax data prepare NAME``: build a dataset once."""

import argparse
import os
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax.data import registry
from ferjax.data.prepare import format_summary, prepare


def main(argv: Sequence[str] | None = None) -> int:
  """Runs ``prepare`` from arguments after ``ferjax data prepare``."""
  parser = argparse.ArgumentParser(
      prog="ferjax data prepare",
      description="Build a dataset as array_record files (no TensorFlow).")
  parser.add_argument("name", choices=sorted(registry.DATASETS),
                      help="the dataset to build")
  parser.add_argument("--manual-dir", type=os.path.expanduser,
                      help="where the downloaded files are")
  parser.add_argument("--data-dir", type=os.path.expanduser,
                      help="TFDS data dir to build into "
                      "(default: TFDS's, ~/tensorflow_datasets)")
  parser.add_argument("--builder-config", metavar="NAME",
                      help="the dataset's variant, e.g. original|clean for "
                      "fer2013 (the experiment's input.builder_config)")
  parser.add_argument("--landmarks", action="store_true",
                      help="also extract FaceMesh's 468 points of every "
                      "face once, cached beside the dataset (what the "
                      "geometric models read), and count the faces scored "
                      "under 0.5 per split")
  parser.add_argument("--config", dest="old_config", metavar="NAME",
                      help="deprecated spelling of --builder-config")
  args = parser.parse_args(argv)
  if args.old_config:
    print("ferjax data prepare: --config is deprecated here (it names the "
          "experiment file elsewhere); use --builder-config", file=sys.stderr)
    args.builder_config = args.builder_config or args.old_config

  def build() -> int:
    summary = prepare(args.name, manual_dir=args.manual_dir,
                      data_dir=args.data_dir, config=args.builder_config)
    print(format_summary(summary), flush=True)
    if args.landmarks:
      from ferjax.data import landmarks, loading  # pylint: disable=g-import-not-at-top
      builder = loading.prepared_builder(
          args.name, data_dir=args.data_dir,
          builder_config=summary["config"])
      splits = builder.info.splits
      for split in sorted(splits, key=lambda s: splits[s].num_examples):
        meshes = landmarks.read_meshes(builder, split)
        print(f"landmarks {split}: {len(meshes)} faces, "
              f"{meshes.low_score} scored under {landmarks.LOW_SCORE} "
              f"(cached in {landmarks.chunk_path(builder, split, 0).parent})",
              flush=True)
    return 0

  # As every command: 'ferjax data prepare: error: ...', exit 2.
  return commands.reporting_errors("data prepare", build)
