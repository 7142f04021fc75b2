"""gpu/gpu_wheels.py: what the pack holds, from pyproject.toml."""

import importlib.util
import pathlib
import subprocess
import sys

from packaging.requirements import Requirement

from helpers import REPO

_spec = importlib.util.spec_from_file_location(
    "gpu_wheels", REPO / "gpu" / "gpu_wheels.py")
gpu_wheels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_wheels)


def _pyproject(tmp_path: pathlib.Path) -> pathlib.Path:
  path = tmp_path / "pyproject.toml"
  path.write_text('''[project]
name = "ferjax"
dependencies = ["numpy>=2", "protobuf>=6.31.1"]
[project.optional-dependencies]
test = ["packaging; python_version >= '3.13'"]
bench = []
gpu = ["tomli"]
''')
  return path


def test_the_project_requirements_come_from_pyproject(tmp_path):
  specs = gpu_wheels.project_requires(_pyproject(tmp_path))
  reqs = [Requirement(s) for s in specs]
  assert [r.name for r in reqs] == ["numpy", "protobuf", "packaging"]
  env = {"python_version": "3.12", "extra": "test"}
  assert not reqs[2].marker.evaluate(env)
  assert reqs[2].marker.evaluate({**env, "python_version": "3.13"})
  assert not reqs[2].marker.evaluate({"python_version": "3.13", "extra": ""})


def test_closure_leaves_out_the_node_and_other_extras(tmp_path):
  needed = gpu_wheels.closure("ferjax", "3.12", {"protobuf"},
                              _pyproject(tmp_path))
  assert needed == {"numpy", "protobuf"}  # packaging: 3.13 only; no tomli.


def test_a_fresh_clone_packs_protobuf_though_the_node_has_one():
  """No installed ferjax is read: the project's own file is."""
  out = subprocess.run([sys.executable, str(REPO / "gpu" / "gpu_wheels.py")],
                       capture_output=True, text=True, check=True).stdout
  names = {line.split("==")[0] for line in out.split()}
  assert "protobuf" in names
  assert "jax" not in names  # The node has it.
