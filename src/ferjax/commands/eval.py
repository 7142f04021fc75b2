"""``ferjax eval``: metrics of a run's checkpoint, or of an ensemble of runs."""

import argparse
import os
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax import compilation_cache
from ferjax import config as config_lib
from ferjax import finite_json
from ferjax.commands import run_dirs
from ferjax.evaluate.views import VIEWS


def _crop_size(text: str) -> tuple[int, int]:
  try:
    height, width = (int(v) for v in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected H,W in pixels, e.g. 40,40; got {text!r}") from None
  return height, width


def build_parser() -> argparse.ArgumentParser:
  ev = argparse.ArgumentParser(
      prog="ferjax eval",
      description="Metrics of a run's checkpoint on its evals or on --split; "
      "with several --workdir, each member's and their ensemble's (the mean "
      "of their softmax, each member with its own preprocessing).")
  ev.add_argument("--workdir", action="append", type=os.path.expanduser,
                  help="run directory written by 'ferjax train'; repeat it "
                  "to evaluate an ensemble (needs --split)")
  run_dirs.add_pretrained(ev)
  ev.add_argument("--split", default=None,
                  help="dataset split, TFDS slicing allowed (default: the "
                  "run's own evals)")
  ev.add_argument("--checkpoint", action="append",
                  help="best (default), latest or a step number; for an "
                  "ensemble once for all members or once per --workdir, "
                  "in the same order")
  ev.add_argument("--tta", choices=tuple(VIEWS),
                  help="test-time augmentation for every eval (default: "
                  "each eval's own)")
  ev.add_argument("--crop-size", type=_crop_size, metavar="H,W",
                  help="ten-crop size in pixels of the stored image "
                  "(default: the eval's own, else 90%% of the image)")
  ev.add_argument("--dataset", action="append", metavar="NAME[/CONFIG]",
                  help="evaluate on this dataset instead of the run's own, "
                  "classes matched by name (repeat it for a table of models "
                  "against datasets); default split: all but train")
  run_dirs.add_dataset_dirs(ev, per_dataset=True)
  ev.add_argument("--per-class", action="store_true",
                  help="also print per-class accuracy")
  ev.add_argument("--saliency-by-class", metavar="PNG",
                  type=os.path.expanduser,
                  help="also draw each class's mean Grad-CAM map (of the "
                  "true class) over --split (default: the validation split) "
                  "into PNG; one run")
  ev.add_argument("--json", action="store_true",
                  help="print the full result (confusion matrices included) "
                  "as JSON instead of tables")
  return ev


def _eval(args: argparse.Namespace, extra: list[str]) -> int:
  if extra:
    raise config_lib.ConfigError(f"unrecognised arguments: {' '.join(extra)}")
  args.workdir = run_dirs.from_args(args)
  run_dirs.refuse_sweeps(args.workdir)
  if len(args.workdir) > 1 and args.saliency_by_class:
    raise config_lib.ConfigError(
        "--saliency-by-class draws one run's maps, not an ensemble's")
  if args.saliency_by_class:  # A new file, checked before the work.
    from ferjax.run import files
    files.check_new(args.saliency_by_class, "--saliency-by-class", "eval")
  if len(args.workdir) > 1 and args.split is None and not args.dataset:
    raise config_lib.ConfigError(
        "an ensemble (several --workdir) is evaluated on one --split")
  checkpoints = args.checkpoint or ["best"]
  if len(checkpoints) not in (1, len(args.workdir)):
    raise config_lib.ConfigError(
        f"--checkpoint: expected one for every run or one per --workdir "
        f"({len(args.workdir)}), got {len(checkpoints)}")
  from ferjax.run.run_dir import RunDir
  config = RunDir(args.workdir[0]).read_config()
  from ferjax.train import parallel
  parallel.configure_cpu_devices(config.parallel.cpu_devices)
  parallel.configure_gpu_determinism(
      config.parallel.get("deterministic_gpu", False))
  compilation_cache.enable(compilation_cache.default_dir())
  if args.dataset:
    return _cross_dataset(args, checkpoints)
  for option in ("data_dir", "manual_dir"):
    values = getattr(args, option) or [None]
    if len(values) > 1:
      raise config_lib.ConfigError(
          f"--{option.replace('_', '-')} is given once, or once per "
          "--dataset")
    setattr(args, option, values[0])
  from ferjax.commands import tables
  from ferjax.evaluate import run_evaluation
  options = dict(split=args.split, tta=args.tta, crop_size=args.crop_size,
                 data_dir=args.data_dir, manual_dir=args.manual_dir)
  if len(args.workdir) > 1:
    result = run_evaluation.evaluate_ensemble(
        args.workdir, checkpoint=checkpoints, **options)
  else:
    result = run_evaluation.evaluate_run(
        args.workdir[0], checkpoint=checkpoints[0], **options)
  if args.json:
    print(finite_json.dumps(result))
  else:
    print(tables.format_results(result, per_class=args.per_class))
  if args.saliency_by_class:
    _saliency_by_class(args, checkpoints[0])
  return 0


def _per_dataset(values: list[str] | None, option: str, count: int, *,
                 shared: bool) -> list[str | None]:
  """``--data-dir`` (``shared``: none, one for all, one each) or
  ``--manual-dir`` (none, or one each, '' for none): one folder holds one
  dataset's download."""
  values = values or [None] * count
  if len(values) == 1 and shared:
    values *= count
  if len(values) != count:
    expected = ("one for every --dataset or one per --dataset" if shared
                else "one per --dataset, in order ('' for one already built)")
    raise config_lib.ConfigError(
        f"{option}: expected {expected} ({count}), got {len(values)}")
  return [v or None for v in values]


def _cross_dataset(args: argparse.Namespace, checkpoints: list[str]) -> int:
  """``--dataset``: the runs (and their ensemble) on other datasets."""
  if args.saliency_by_class or args.per_class:
    raise config_lib.ConfigError(
        "--dataset prints a table of models against datasets; "
        "--saliency-by-class and --per-class are for a run's own data "
        "(--json has every class)")
  from ferjax.commands import tables
  from ferjax.evaluate import cross_dataset
  count = len(args.dataset)
  refs = [cross_dataset.DatasetRef.parse(name, data_dir=data_dir,
                                         manual_dir=manual_dir)
          for name, data_dir, manual_dir in zip(
              args.dataset,
              _per_dataset(args.data_dir, "--data-dir", count, shared=True),
              _per_dataset(args.manual_dir, "--manual-dir", count,
                           shared=False))]
  result = cross_dataset.evaluate(
      args.workdir, refs, split=args.split, checkpoint=checkpoints,
      tta=args.tta, crop_size=args.crop_size)
  if args.json:
    print(finite_json.dumps(result))
  else:
    print(tables.format_cross_dataset(result))
  return 0


def _saliency_by_class(args: argparse.Namespace, checkpoint: str) -> None:
  from ferjax.evaluate import calibrate, class_saliency, saliency_plots
  from ferjax.run.run_dir import RunDir
  (workdir,) = args.workdir
  split = args.split or calibrate.validation_split(
      RunDir(workdir).read_config(), workdir)
  result = class_saliency.mean_saliency_by_class(
      workdir, split=split, checkpoint=checkpoint, data_dir=args.data_dir,
      manual_dir=args.manual_dir)
  saliency_plots.write_class_saliency(result, args.saliency_by_class)
  print(f"mean saliency per class on {split}: {args.saliency_by_class}",
        file=sys.stderr)


def main(argv: Sequence[str]) -> int:
  args, extra = build_parser().parse_known_args(
      run_dirs.pretrained_apart(argv))
  return commands.reporting_errors("eval", lambda: _eval(args, extra))
