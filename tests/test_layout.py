"""The package's layout: imports run one way (a DAG), at module top, and every module imports alone.

The graph is read from the source with ``ast``: an edge A -> B for every ``import``/``from ... import``
in A that names a ddpgkit module B (``from .x import name`` points at ``x``, or at ``x.name`` when
that is a module). A cycle, an import inside a function or class, or an import of the package root
from inside the package fails here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "ddpgkit"

# modules the CLI must not reach into: it parses and prints, the library does the work
CLI_FORBIDDEN = ("torch", "gymnasium", "signal", "ddpgkit.algo", "ddpgkit.nn.backward", "ddpgkit.data",
                 "ddpgkit.training.state", "ddpgkit.training.callbacks", "ddpgkit.storage.checkpoint",
                 "ddpgkit.storage.atomic")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(mod: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported name, line, at module top) of every import in the module: absolute dotted names,
    relative ones resolved, ``from X import y`` as X.y."""
    tree = ast.parse(path.read_text())
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    nested = {id(n) for scope in ast.walk(tree) if isinstance(scope, scopes)
              for n in ast.walk(scope)}  # inside a function or class; a top-level `if`/`try` is still the top
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) not in nested) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_package else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out += [(f"{prefix}.{a.name}", node.lineno, id(node) not in nested) for a in node.names]
    return out


def resolve(name: str) -> str | None:
    """The ddpgkit module an imported dotted name lives in (the longest module prefix), or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for name, _, _ in imported(mod, path):
            target = resolve(name)
            if target is not None and target != mod:
                edges[mod].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_is_a_dag():
    edges = graph()
    assert sum(map(len, edges.values())) > 50  # the graph was read (a broken reader finds no edge)
    assert "ddpgkit.training.loop" in edges["ddpgkit.agents.ddpg"]
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


# The package's rooms, bottom up: a module imports only from its own folder (as the DAG above allows) or from
# folders before it here. docs/ARCHITECTURE.md draws the same order.
LAYERS = ("_version", "errors", "runtime", "storage", "nn", "config", "data", "envs", "algo", "training", "agents",
          "analysis", "experiments", "cli")


def layer(mod: str) -> str:
    """The room of a module: its folder, or the module itself for the few beside the folders."""
    return mod.split(".")[1] if "." in mod else "root"


def against_layers(edges: dict[str, set[str]]) -> list[str]:
    """The imports that go from a room to a later one (or to the package root)."""
    wrong = []
    for mod, targets in edges.items():
        for target in targets:
            here, there = layer(mod), layer(target)
            if here == "root" or here == there:
                continue
            if there == "root" or LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{mod} ({here}) imports {target} ({there})")
    return wrong


def test_the_folders_are_layers_imported_one_way():
    rooms = {layer(m) for m in MODULES} - {"root"}
    assert rooms == set(LAYERS), f"a folder or loose module not in LAYERS: {sorted(rooms ^ set(LAYERS))}"
    wrong = against_layers(graph())
    assert not wrong, "imports against the layers' order:\n" + "\n".join(wrong)


def test_the_layer_check_finds_an_import_against_the_order():
    assert against_layers({"ddpgkit.algo.learner": {"ddpgkit.storage.atomic", "ddpgkit.algo.ddpg"}}) == []
    assert against_layers({"ddpgkit.storage.schema": {"ddpgkit.algo.health"}}) == [
        "ddpgkit.storage.schema (storage) imports ddpgkit.algo.health (algo)"]


def test_no_module_imports_the_package_root():
    for mod, path in MODULES.items():
        if mod == "ddpgkit":
            continue
        for name, line, _ in imported(mod, path):
            assert resolve(name) != "ddpgkit", f"{path}:{line} imports the package root ({name})"


# optional extras, imported where they are used (Ray: once the sweep knows which cluster it starts;
# TensorBoard's writer: when a run asks for it; MuJoCo, for Gymnasium-Robotics' guard, once an id asks for the
# robotics extra: envs/robotics.py; Optuna, once `ddpgkit tune` starts or reads a study: experiments/tune.py; onnxscript
# and onnxruntime, when a policy is exported to ONNX or run from it: agents/export.py)
OPTIONAL_EXTRAS = ("ray", "torch.utils.tensorboard", "mujoco", "optuna", "onnxscript", "onnxruntime")


def test_every_import_is_at_module_top():
    late = [f"{path.relative_to(SRC)}:{line} {name}" for mod, path in MODULES.items()
            for name, line, top in imported(mod, path)
            if not top and not any(name == x or name.startswith(x + ".") for x in OPTIONAL_EXTRAS)]
    assert not late, "imports inside functions or classes:\n" + "\n".join(late)


def test_the_cli_parses_and_prints_only():
    for mod, path in MODULES.items():
        if not mod.startswith("ddpgkit.cli"):
            continue
        for name, line, _ in imported(mod, path):
            bad = [f for f in CLI_FORBIDDEN if name == f or name.startswith(f + ".")]
            assert not bad, f"{path.relative_to(SRC)}:{line} imports {name}: the CLI reaches into the library"
            assert "_click" not in name.split(".") and name.split(".")[0] != "click", \
                f"{path.relative_to(SRC)}:{line}: the CLI uses typer's public API only ({name})"


@pytest.mark.parametrize("chunk", range(2))
def test_each_module_imports_alone_in_a_fresh_interpreter(chunk):
    """Half the modules per test (the two halves run in parallel under xdist), two processes at a time."""
    names = [m for m in sorted(MODULES) if not m.endswith("__main__")][chunk::2]  # __main__ runs the CLI

    def run(name: str) -> tuple[str, int, str]:
        p = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
        return name, p.returncode, p.stderr[-2000:]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, names))
    failed = [f"{n}: {e}" for n, code, e in results if code != 0]
    assert not failed, "\n".join(failed)


def test_the_report_reads_run_directories_without_torch_or_ray():
    """`ddpgkit.analysis.report` and everything it imports (statically) import neither torch nor Ray, and in a
    fresh interpreter importing it loads neither (the package root's names are lazy)."""
    edges = graph()
    closure, todo = set(), ["ddpgkit.analysis.report"]
    while todo:
        m = todo.pop()
        if m not in closure:
            closure.add(m)
            todo += edges[m]
    heavy = [f"{m}: {name}" for m in sorted(closure) for name, _, _ in imported(m, MODULES[m])
             if name.split(".")[0] in ("torch", "ray", "safetensors")]
    assert not heavy and "ddpgkit.agents.ddpg" not in closure, heavy
    code = "import sys, ddpgkit.analysis.report; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr
