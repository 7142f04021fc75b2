"""The package's import graph: no cycles; inference loads no training stack."""

import ast
import pathlib
import subprocess
import sys

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"


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


def test_predict_loads_neither_optax_nor_tfds():
  """`ferjax predict` reads a run directory, not the training stack."""
  code = ("import sys, ferjax.recognition.predict, ferjax.run.run_dir, "
          "ferjax.models.lenet;"
          "from ferjax.recognition import classifier;"
          "print(sorted(m for m in ('optax', 'tensorflow_datasets', "
          "'tensorflow') if m in sys.modules))")
  out = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                       capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"
  loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()
            if line.startswith("import time:")}
  assert "ferjax.recognition.predict" in loaded
  assert not {m for m in loaded if m.split(".")[0] in (
      "optax", "tensorflow_datasets")}
