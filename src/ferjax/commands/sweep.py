"""``ferjax sweep``: the command over the ``sweep`` and ``slurm`` launchers."""

import argparse
import os
import pathlib
import signal
import sys
from collections.abc import Sequence

from ferjax import commands
from ferjax import config as config_lib
from ferjax.experiment import slurm
from ferjax.experiment import sweep
from ferjax.run.run_dir import RunDir


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="ferjax sweep",
      description="Run every trial of an experiment's get_sweep() as its own "
      "'ferjax train' in DIR/<overrides>; relaunch to resume.",
      epilog="--config.FIELD=VALUE sets a field in every trial. Each trial "
      "uses config.parallel.cpu_devices CPU devices: with --concurrent-trials N "
      "on a CPU host, keep N x cpu_devices near the core count.")
  parser.add_argument("--config", type=os.path.expanduser,
                      help="experiment file defining get_config and "
                      "get_sweep, optionally with :args")
  parser.add_argument("--workdir", required=True, type=os.path.expanduser,
                      help="sweep directory: sweep.json and one run "
                      "directory per trial")
  parser.add_argument("--concurrent-trials", type=int, default=None,
                      metavar="N", help="trials run at the same time "
                      "(default 1); each uses config.parallel.* devices")
  parser.add_argument("--parallel", type=int, dest="old_parallel",
                      metavar="N", help="deprecated spelling of "
                      "--concurrent-trials")
  parser.add_argument("--dry-run", action="store_true",
                      help="list the trials and their status; run nothing")
  parser.add_argument("--launcher", choices=("local", "slurm"),
                      default="local",
                      help="local processes (default) or SLURM jobs, with "
                      "the resources of config.slurm")
  parser.add_argument("--no-wait", action="store_true",
                      help="slurm: return once the jobs are submitted")
  parser.add_argument("--status", action="store_true",
                      help="show each trial's state (with its SLURM job) "
                      "and return; needs only --workdir")
  return parser


def _say(message: str) -> None:
  print(message, flush=True)


def _note(message: str) -> None:
  print(f"ferjax sweep: {message}", file=sys.stderr, flush=True)


def _status(workdir: str) -> int:
  for line in slurm.trial_lines(workdir):
    print(line)
  return 0


def _sweep(args: argparse.Namespace, extra: list[str]) -> int:
  common = config_lib.split_override_args(extra)
  trials = sweep.plan(args.config, common, args.workdir)
  messages = {"say": _say, "note": _note}
  if args.launcher == "slurm":
    runner = slurm.SlurmRunner(args.config, common, args.workdir, trials,
                               parallel=args.parallel, wait=not args.no_wait,
                               **messages)
  else:
    runner = sweep.Runner(args.config, common, args.workdir, trials,
                          parallel=args.parallel, **messages)
  if args.dry_run:
    for trial in trials:
      status = ("finished" if RunDir(trial.workdir).is_finished() else
                trial.read_status(_note).get("status", "new"))
      print(f"{status:<12} {trial.workdir}")
    return 0
  previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
  try:
    statuses = runner.run()
  except KeyboardInterrupt:
    print("ferjax sweep: interrupted; relaunch the same command to resume",
          file=sys.stderr)
    return 130
  finally:
    signal.signal(signal.SIGTERM, previous)
  if args.no_wait:
    print(f"sweep {args.workdir}: submitted; see `ferjax sweep --status "
          f"--workdir {args.workdir}`; relaunch to wait for the jobs")
    return 0
  failed = [name for name, s in statuses.items() if s != "finished"]
  print(f"sweep {args.workdir}: {len(statuses) - len(failed)} finished, "
        f"{len(failed)} failed")
  for name in failed:
    print(f"  failed: {pathlib.Path(args.workdir) / name / sweep.STATUS_FILE}")
  return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
  """``ferjax sweep --config FILE[:args] --workdir DIR [--concurrent-trials N]``."""
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if args.old_parallel is not None:
    print("ferjax sweep: --parallel is deprecated (it is easily confused with "
          "config.parallel.*, the devices of each trial); use "
          "--concurrent-trials", file=sys.stderr)
  args.parallel = args.concurrent_trials or args.old_parallel or 1
  if args.status:
    return commands.reporting_errors("sweep", lambda: _status(args.workdir))
  if args.config is None:
    parser.error("the following arguments are required: --config")
  if args.no_wait and args.launcher != "slurm":
    parser.error("--no-wait needs --launcher slurm")
  return commands.reporting_errors("sweep", lambda: _sweep(args, extra),
                                   errors=(sweep.SweepError,))


if __name__ == "__main__":
  sys.exit(main())
