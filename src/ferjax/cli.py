"""The ``ferjax`` command: dispatches ``ferjax <command> ...`` to its module.

Each command is one module of ``ferjax.commands`` that parses its arguments
and calls the library; heavy imports happen inside each command.
"""

import argparse
import dataclasses
import importlib
import logging
import sys
from collections.abc import Sequence

import jax


@dataclasses.dataclass(frozen=True)
class Command:
  """A command's one-line help (``ferjax --help`` lists it) and its module
  in ``ferjax.commands``, whose ``main(argv)`` runs it; kept here so that
  listing the commands imports none of them."""

  help: str
  module: str


# `ferjax <words> ...` -> ferjax.commands.<module>.main(...).
COMMANDS: dict[tuple[str, ...], Command] = {
    ("train",): Command("train an experiment config", "train"),
    ("eval",): Command("evaluate a run's checkpoint, or an ensemble of runs",
                       "eval"),
    ("calibrate",): Command("fit a checkpoint's softmax temperature on the "
                            "validation split; eval and predict then use it",
                            "calibrate"),
    ("crossval",): Command("train every fold of a kfold experiment; mean and "
                           "std", "crossval"),
    ("export",): Command("a run reduced to one checkpoint's model variables, "
                         "to ship a model", "export"),
    ("models",): Command("list every model with parameters and FLOPs",
                         "models"),
    ("data", "prepare"): Command("build a dataset once (synthetic_fer, "
                                 "fer2013, ck_plus) and print its split sizes",
                                 "data"),
    ("sweep",): Command("run every trial of an experiment's get_sweep(); "
                        "relaunch to resume", "sweep"),
    ("report",): Command("tables and plots over runs and sweeps", "report"),
    ("reproduce",): Command("rerun a run from its manifest and compare the "
                            "metrics", "reproduce"),
    ("predict",): Command("label the expressions of the faces in photos, "
                          "videos and camera streams (JSON lines, annotated "
                          "copies)", "predict"),
    ("fuse",): Command("late fusion of a CNN run and a geometric (landmark "
                       "SVM) run, weight fitted on validation", "fuse"),
    ("convert", "torchvision"): Command("import torchvision weights as a run "
                                        "directory", "convert"),
    ("convert", "facemesh"): Command("MediaPipe FaceMesh's weights from its "
                                     "wheel or .tflite", "convert_facemesh"),
}

# What the first word of a two-word command groups.
_GROUPS = {"data": "datasets: 'ferjax data prepare NAME'",
           "convert": "weights from other frameworks: "
                      "'ferjax convert torchvision PTH OUT', "
                      "'ferjax convert facemesh SOURCE OUT'"}


class _Version(argparse.Action):
  """--version: ferjax's version and the backend JAX would use."""

  def __init__(self, option_strings, dest, **kwargs):
    super().__init__(option_strings, dest, nargs=0,
                     help="print the version and JAX backend, then exit")

  def __call__(self, parser, namespace, values, option_string=None):
    from ferjax import __version__  # pylint: disable=g-import-not-at-top
    print(f"ferjax {__version__} (jax {jax.__version__}, "
          f"backend {jax.default_backend()}, "
          f"{jax.device_count()} device(s))")
    parser.exit()


def build_parser() -> argparse.ArgumentParser:
  """The top-level parser: --help, --version and the list of commands."""
  parser = argparse.ArgumentParser(
      prog="ferjax", description="Facial expression recognition in JAX.",
      epilog="'ferjax COMMAND --help' describes each command.")
  parser.add_argument("--version", action=_Version)
  sub = parser.add_subparsers(dest="command", required=True,
                              metavar="COMMAND")
  groups = {}
  for words, command in COMMANDS.items():
    if len(words) == 1:
      sub.add_parser(words[0], help=command.help, add_help=False)
    else:
      if words[0] not in groups:  # One group, several subcommands.
        groups[words[0]] = sub.add_parser(
            words[0], help=_GROUPS[words[0]]).add_subparsers(
                required=True, metavar="SUBCOMMAND")
      groups[words[0]].add_parser(words[1], help=command.help)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  # Off a terminal (a batch job's log) every line says when it was written.
  timed = "" if sys.stderr.isatty() else "%(asctime)s "
  logging.basicConfig(level=logging.INFO,
                      format=f"{timed}%(levelname)s %(message)s",
                      datefmt="%Y-%m-%d %H:%M:%S")
  for noisy in ("jax._src", "orbax"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  # Orbax reports through absl, including a warning on every read-only open
  # and a traceback per background thread when a save fails; the failure
  # also reaches the caller as an exception, reported below once.
  logging.getLogger("absl").setLevel(logging.CRITICAL)
  # Orbax's asyncio tasks log a failed write once more ("Task exception was
  # never retrieved") after it has reached the caller.
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)
  argv = list(sys.argv[1:] if argv is None else argv)
  for words, command in COMMANDS.items():
    if tuple(argv[:len(words)]) == words:
      module = importlib.import_module(f"ferjax.commands.{command.module}")
      return module.main(argv[len(words):])
  build_parser().parse_args(argv)  # --help, --version or a usage error.
  return 2


if __name__ == "__main__":
  sys.exit(main())
