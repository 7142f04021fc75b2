"""The package's import graph: layers that point down, no cycles; run-dir
files named in one place; inference loads no training stack; test files
import shared helpers, never each other."""

import ast
import pathlib
import subprocess
import sys

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(SRC).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
  """ferjax module -> the ferjax modules it imports, anywhere in its code."""
  modules = {_module_name(p): p for p in (SRC / "ferjax").rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          base = ".".join(package.split(".")[:len(package.split(".")) -
                                               node.level + 1] + [base])
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules
                   else base for a in node.names]
      else:
        continue
      edges |= {t for t in targets if t in modules and t != name}
    graph[name] = edges
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  state: dict[str, int] = {}
  stack: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 1:
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state and (cycle := visit(nxt)):
        return cycle
    stack.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state and (cycle := visit(node)):
      return cycle
  return None


def test_the_walker_finds_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
      "a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
  graph = import_graph()
  assert "ferjax.train.loop" in graph["ferjax.commands.train"]  # In functions too.
  assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# Bottom to top. A module may import from its own unit and from lower layers
# only; units of one layer know nothing of each other.
LAYERS = (
    ("ferjax", "ferjax.atomic", "ferjax.axis", "ferjax.calibration",
     "ferjax.compilation_cache",
     "ferjax.features", "ferjax.filelock", "ferjax.finite_json",
     "ferjax.fs_errors", "ferjax.labels", "ferjax.landmarks", "ferjax.metrics",
     "ferjax.pretrained"),
    ("ferjax.data", "ferjax.models", "ferjax.losses"),
    ("ferjax.evaluate.views",),
    ("ferjax.config",),
    ("ferjax.run",),
    ("ferjax.train", "ferjax.recognition", "ferjax.convert"),
    ("ferjax.export", "ferjax.evaluate"),
    ("ferjax.experiment",),
    ("ferjax.commands",),
    ("ferjax.cli",),
)
# Modules that belong to another unit than their name says: the view
# registry is evaluation's, but training and the config checks read it.
_UNIT_OF = {"ferjax.config_checks": "ferjax.config",
            "ferjax.evaluate.views": "ferjax.evaluate.views"}
# Leaves may use one another (fs_errors by filelock, say): none of them
# imports anything above.
_LEAVES = LAYERS[0]
# The package's one-call API (``ferjax.recognize``) imports its module when
# called, never at ``import ferjax``: the one arrow up.
_FACADE = {("ferjax", "ferjax.recognition.api")}


def unit(module: str) -> str:
  """The package (or top-level module) a module belongs to."""
  if module in _UNIT_OF:
    return _UNIT_OF[module]
  return ".".join(module.split(".")[:2])


def layer(module: str) -> int:
  name = unit(module)
  for i, units in enumerate(LAYERS):
    if name in units:
      return i
  raise AssertionError(f"{module}: in no layer of test_imports.LAYERS")


def arrows_up(graph: dict[str, set[str]]) -> list[str]:
  """Imports that do not point to a lower layer (or within a unit)."""
  bad = []
  for source, targets in graph.items():
    for target in targets:
      if unit(source) == unit(target) or (source, target) in _FACADE:
        continue
      if layer(target) < layer(source) or (
          unit(source) in _LEAVES and unit(target) in _LEAVES):
        continue
      bad.append(f"{source} -> {target}")
  return sorted(bad)


def test_the_layer_check_finds_an_arrow_up():
  assert arrows_up({"ferjax.run.run_dir": {"ferjax.train.loop"},
                    "ferjax.train.loop": {"ferjax.run.run_dir"}}) == [
                        "ferjax.run.run_dir -> ferjax.train.loop"]
  # One layer, two units: recognition may not import train.
  assert arrows_up({"ferjax.recognition.x": {"ferjax.train.y"}}) == [
      "ferjax.recognition.x -> ferjax.train.y"]
  assert arrows_up({"ferjax.config_checks": {"ferjax.config"},
                    "ferjax.train.a": {"ferjax.train.b"}}) == []


def test_layers_only_point_down():
  graph = import_graph()
  assert {layer(m) for m in graph} == set(range(len(LAYERS)))
  assert not arrows_up(graph), "\n".join(arrows_up(graph))


# What a run directory holds; only ferjax.run names these (a dataset's
# build lock, also ".lock", is the data package's own).
RUN_FILES = ("config.json", "manifest.json", "metrics.jsonl", "checkpoints",
             "tensorboard", "corrupt_checkpoints", "crossval.json",
             "checksums.json", "calibration.json", "reliability.png")


def run_file_names(path: pathlib.Path) -> list[str]:
  """The run-directory names that the code of ``path`` spells out."""
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      found += [n for n in RUN_FILES
                if node.value == n or node.value.endswith("/" + n)]
  return found


def test_the_name_check_finds_a_run_file(tmp_path):
  code = tmp_path / "m.py"
  code.write_text('"""Writes metrics.jsonl."""\nA = "crossval.json"\n'
                  'B = f"{A}/checkpoints"\n')
  assert run_file_names(code) == ["crossval.json", "checkpoints"]


def test_only_the_run_package_names_run_files():
  named = {}
  for path in (SRC / "ferjax").rglob("*.py"):
    if _module_name(path).startswith("ferjax.run."):
      continue
    if names := run_file_names(path):
      named[str(path.relative_to(SRC))] = names
  assert not named, named
  assert run_file_names(SRC / "ferjax" / "run" / "run_dir.py")


def test_only_commands_parse_arguments():
  """Library modules take values; argparse is the commands' business."""
  parsing = sorted(
      _module_name(path) for path in (SRC / "ferjax").rglob("*.py")
      if "argparse" in {alias.name for node in ast.walk(ast.parse(
          path.read_text())) if isinstance(node, ast.Import)
                        for alias in node.names})
  assert parsing and all(m == "ferjax.cli" or m.startswith("ferjax.commands.")
                         for m in parsing), parsing


def test_no_test_file_imports_another():
  tests = pathlib.Path(__file__).resolve().parents[1]
  names = {p.stem for p in tests.rglob("test_*.py")} | {"conftest"}
  assert {"test_imports", "test_train"} <= names  # Unit and integration.
  offenders = []
  for path in tests.rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom) and node.module in names:
        offenders.append(f"{path.name} imports {node.module}")
      elif isinstance(node, ast.Import):
        offenders += [f"{path.name} imports {a.name}" for a in node.names
                      if a.name in names]
  assert not offenders, offenders


def test_predict_loads_neither_optax_nor_tfds():
  """`ferjax predict` reads a run directory, not the training stack."""
  code = ("import sys, ferjax.commands.predict, ferjax.run.run_dir, "
          "ferjax.models.lenet;"
          "from ferjax.recognition import classifier;"
          "print(sorted(m for m in ('optax', 'tensorflow_datasets', "
          "'tensorflow') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                       capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"
  loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:")}
  assert {"ferjax.commands.predict", "ferjax.recognition.predict"} <= loaded
  assert not {m for m in loaded if m.split(".")[0] in (
      "optax", "tensorflow_datasets")}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
  """Every module ``start`` imports, directly or through others."""
  seen, todo = set(), [start]
  while todo:
    for nxt in graph[todo.pop()] - seen:
      seen.add(nxt)
      todo.append(nxt)
  return seen


# Reports read runs; they need the metric names, not the trainer.
REPORTS = ("ferjax.experiment.report", "ferjax.experiment.report_plots",
           "ferjax.experiment.runs")


def test_reports_do_not_import_training():
  graph = import_graph()
  assert "ferjax.metrics" in reachable(graph, "ferjax.experiment.runs")
  training = {r: sorted(m for m in reachable(graph, r)
                        if m.startswith("ferjax.train"))
              for r in REPORTS}
  assert not any(training.values()), training


# The library returns or yields records and logs; the commands print. The
# one exception: the training progress bar redraws its line on stderr.
PRINTING_ALLOWED = {"ferjax.train.progress": "the progress bar"}


def printing(path: pathlib.Path) -> list[str]:
  """Where the code of ``path`` calls print or names sys.stdout/stderr
  (other than to ask ``isatty()``)."""
  tree = ast.parse(path.read_text())
  asks_isatty = {id(node.func.value) for node in ast.walk(tree)
                 if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute)
                 and node.func.attr == "isatty"}
  found = []
  for node in ast.walk(tree):
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id == "print"):
      found.append(f"line {node.lineno}: print")
    elif (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")
          and isinstance(node.value, ast.Name) and node.value.id == "sys"
          and id(node) not in asks_isatty):
      found.append(f"line {node.lineno}: sys.{node.attr}")
  return sorted(found)


def test_the_print_check_finds_prints(tmp_path):
  code = tmp_path / "m.py"
  code.write_text("import sys\nprint('a')\nsys.stderr.write('b')\n"
                  "f = sys.stdout\nok = sys.stderr.isatty()\n")
  assert printing(code) == ["line 2: print", "line 3: sys.stderr",
                            "line 4: sys.stdout"]


def test_only_commands_print():
  offenders = {}
  for path in (SRC / "ferjax").rglob("*.py"):
    name = _module_name(path)
    if (name == "ferjax.cli" or name.startswith("ferjax.commands")
        or name in PRINTING_ALLOWED):
      continue
    if found := printing(path):
      offenders[name] = found
  assert not offenders, offenders
  assert printing(SRC / "ferjax" / "commands" / "predict.py")
