"""CI runs what the README says, with every extra whose tests must run."""

import re

from helpers import REPO


def _readme_test_command() -> str:
  readme = (REPO / "README.md").read_text()
  block = readme.split("Run the tests (what CI runs, via `.ci/run`):")[1]
  return re.search(r"```bash\n(.*?)\n```", block, re.S).group(1)


def test_ci_runs_the_readme_test_command_verbatim():
  command = _readme_test_command()
  assert command.startswith("python3 -m venv .venv && ")
  ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
  assert command in ci_lines


def test_the_test_command_installs_the_extras_of_skippable_tests():
  """tests/integration/test_export_onnx.py and test_slurm.py skip without their
  extras: CI must install them, or they would only ever skip."""
  extras = re.search(r"-e '\.\[([a-z0-9,]+)\]'", _readme_test_command())
  assert extras and {"test", "slurm", "onnx"} <= set(
      extras.group(1).split(","))
