"""The distributions an offline GPU node lacks, at the locked versions.

  python gpu/gpu_wheels.py [--python-version 3.12] [--provided]

Walks what ``gpu_check.sh`` runs needs (ferjax's requirements with its
``test`` and ``bench`` extras, read from ``pyproject.toml``, so a fresh
clone packs; their own requirements from this environment's installed
metadata) with their markers evaluated for the node's Python, leaves out
what ``gpu/gpu_node_packages.txt`` says the node already has (but for
``ALWAYS_PACKED``), and prints
one ``name==version`` line per distribution to pack, each at its
``requirements.lock`` version: ``gpu_pack.sh`` downloads them. With
``--provided``, the others: what the node has, which ``gpu_rehearse.sh``
installs into a venv that stands in for the node. An unlocked
distribution is an error: the pack holds only tested versions.
"""

import argparse
import importlib.metadata
import pathlib
import re
import sys
import tomllib

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def read_names(path: pathlib.Path) -> set[str]:
  lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
  return {canonical(line) for line in lines if line}


def read_lock(path: pathlib.Path) -> dict[str, str]:
  pins = {}
  for line in path.read_text().splitlines():
    line = line.split("#")[0].strip()
    if line:
      name, _, version = line.partition("==")
      if not version:
        raise SystemExit(f"{path}: '{line}' is not NAME==VERSION")
      pins[canonical(name)] = version
  return pins


EXTRAS = ("test", "bench")
# Packed even though the node has one: its version is unknown, and
# tensorflow-metadata needs protobuf >= 6.31.1 (the pack's shadows it).
ALWAYS_PACKED = {"protobuf"}


def project_requires(pyproject: pathlib.Path) -> list[str]:
  """The project's requirements with ``EXTRAS``, as installed metadata
  spells them (``; extra == "test"``), from ``pyproject.toml``."""
  project = tomllib.loads(pyproject.read_text())["project"]
  specs = list(project["dependencies"])
  for extra in EXTRAS:
    for spec in project["optional-dependencies"][extra]:
      req = Requirement(spec)
      marker = f'extra == "{extra}"'
      req.marker = None
      specs.append(f"{req}; ({spec.partition(';')[2].strip()}) and {marker}"
                   if ";" in spec else f"{req}; {marker}")
  return specs


def requires(name: str, root: str, pyproject: pathlib.Path) -> list[str]:
  if name == root:
    return project_requires(pyproject)
  try:
    return importlib.metadata.requires(name) or []
  except importlib.metadata.PackageNotFoundError:
    raise SystemExit(
        f"gpu_wheels.py: {name} is not installed for {sys.executable}, so "
        "its own requirements are unknown: run with a Python that has "
        "requirements.lock installed (PYTHON=... bash gpu/gpu_pack.sh)")


def closure(root: str, python_version: str, node: set[str],
            pyproject: pathlib.Path = ROOT / "pyproject.toml") -> set[str]:
  """Every distribution ``root`` with ``EXTRAS`` needs, other extras left out.

  What the node has brings its own requirements there: it is not walked.
  """
  env = {"python_version": python_version,
         "python_full_version": f"{python_version}.0"}
  seen, todo = set(), [root]
  while todo:
    name = todo.pop()
    extras = ("", *EXTRAS) if name == root else ("",)
    for spec in requires(name, root, pyproject):
      req = Requirement(spec)
      if req.marker is not None and not any(
          req.marker.evaluate({**env, "extra": e}) for e in extras):
        continue
      dep = canonical(req.name)
      if dep not in seen:
        seen.add(dep)
        if dep not in node:
          todo.append(dep)
  return seen


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--python-version", default="3.12")
  parser.add_argument("--node-packages",
                      default=ROOT / "gpu" / "gpu_node_packages.txt",
                      type=pathlib.Path)
  parser.add_argument("--lock", default=ROOT / "requirements.lock",
                      type=pathlib.Path)
  parser.add_argument("--provided", action="store_true",
                      help="print what the node has instead")
  args = parser.parse_args()
  node = read_names(args.node_packages)
  pins = read_lock(args.lock)
  needed = closure("ferjax", args.python_version, node)
  packed = (needed - node) | (needed & ALWAYS_PACKED)
  chosen = sorted(needed & node if args.provided else packed)
  unlocked = [name for name in chosen if name not in pins]
  if unlocked:
    print(f"gpu_wheels.py: {args.lock} pins none of {', '.join(unlocked)}; "
          "regenerate the lock", file=sys.stderr)
    return 2
  for name in chosen:
    print(f"{name}=={pins[name]}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
