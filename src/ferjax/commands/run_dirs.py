"""The run directories a command reads: ``--workdir``s or ``--pretrained``.

Shared by eval, export and predict, so that a bundled model goes wherever a
run directory does and a sweep's directory is refused the same way.
"""

import argparse
import os
from collections.abc import Sequence

from ferjax import config as config_lib
from ferjax import pretrained


class _Pretrained(argparse.Action):
  """Stores NAME and how many ``--workdir``s came before it: an ensemble's
  members keep the command line's order."""

  def __call__(self, parser, namespace, values, option_string=None):
    setattr(namespace, self.dest, values)
    given = getattr(namespace, "workdir", None)
    setattr(namespace, "pretrained_position",
            len(given) if isinstance(given, list) else int(bool(given)))


def add_pretrained(parser: argparse.ArgumentParser) -> None:
  """``--pretrained [NAME]``: a bundled model where a run directory goes;
  ``from_args`` reads it back. Parse ``pretrained_apart(argv)``."""
  parser.add_argument(
      "--pretrained", nargs="?", const=pretrained.DEFAULT, metavar="NAME",
      action=_Pretrained,
      help="a model shipped with ferjax instead of (or, for an ensemble, "
      "with) --workdir: " + "; ".join(
          f"{name}: {bundled.summary}"
          for name, bundled in pretrained.MODELS.items())
      + f" (default {pretrained.DEFAULT})")


def pretrained_apart(argv: Sequence[str]) -> list[str]:
  """``argv`` where a bare ``--pretrained`` followed by an existing file or
  directory (not a bundled model's name) takes no NAME: that path is an
  input (``predict --pretrained photo.jpg``), not a model. Every command
  with ``add_pretrained`` parses this, not its raw argv."""
  argv = list(argv)
  for i, arg in enumerate(argv[:-1]):
    if arg == "--":
      break
    following = argv[i + 1]
    if (arg == "--pretrained" and following not in pretrained.MODELS
        and os.path.exists(os.path.expanduser(following))):
      argv[i] = f"--pretrained={pretrained.DEFAULT}"
  return argv


def add_dataset_dirs(parser: argparse.ArgumentParser, *,
                     per_dataset: bool = False) -> None:
  """``--data-dir`` and ``--manual-dir``: where a run's dataset is on this
  machine, when not where it was trained (``per_dataset``: given once, or
  once per ``--dataset`` in order, as a list)."""
  repeat = {"action": "append"} if per_dataset else {}
  parser.add_argument("--data-dir", metavar="DIR", type=os.path.expanduser,
                      help="TFDS data dir of the dataset on this machine "
                      "(default: the run's)" + (
                          "; once, or once per --dataset in order"
                          if per_dataset else ""), **repeat)
  parser.add_argument("--manual-dir", metavar="DIR", type=os.path.expanduser,
                      help="where its manual download lies, to build it here"
                      + ("; once per --dataset in order ('' for one already "
                         "built)" if per_dataset else ""), **repeat)


def from_args(args: argparse.Namespace) -> list[str]:
  """The run directories of ``args``: ``--workdir``s and ``--pretrained``
  in the order given."""
  given = args.workdir or []
  given = [given] if isinstance(given, str) else list(given)
  if args.pretrained is not None:
    position = getattr(args, "pretrained_position", len(given))
    given.insert(position, str(pretrained.path(args.pretrained)))
  if not given:
    raise ValueError("expected --workdir DIR or --pretrained [NAME]")
  return given


def refuse_sweeps(workdirs: Sequence[str]) -> None:
  """A sweep's directory where a run's goes: say what to give instead."""
  from ferjax.experiment.sweep import SWEEP_FILE
  for workdir in workdirs:
    if os.path.isfile(os.path.join(workdir, SWEEP_FILE)):
      raise config_lib.ConfigError(
          f"{workdir} is a sweep ({SWEEP_FILE}), not a run: 'ferjax report "
          f"{workdir}' tabulates its trials; give one trial's directory, "
          f"e.g. --workdir {os.path.join(workdir, 'TRIAL')}")
