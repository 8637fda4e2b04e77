"""The import layers, read from the source with ast (nothing is imported):

    common <- models <- {train, export, serve, evaluate} <- ui <- app.py (and scripts/)

A package may import its own modules and any lower layer. Sideways imports between the middle
packages are refused except the few listed in SIDEWAYS, each with its reason. serve never imports
train, nor do ui and app.py. Module-level imports between packages form no cycle, and no module
import chain (lazy ones included) comes back to where it started.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
LAYER = {"common": 0, "models": 1, "train": 2, "export": 2, "serve": 2, "evaluate": 2, "ui": 3, "app": 4, "scripts": 4}
# (importing module, imported module prefix) -> why this sideways import is allowed
SIDEWAYS = {
    ("serve.runtime", "export."): "export on first use: ONNX files and TensorRT engines are built when first needed",
    ("serve.precision", "export.onnx_files"): "int8/bf16 file and record names are defined once, beside the "
                                              "exporter that writes them; serve reads them to choose a precision",
    ("export.tensorrt_build", "serve."): "a new engine is checked with the runtime that will serve it",
    ("export.__main__", "serve.trt_runtime"): "`python -m export trt` asks the runtime whether TensorRT is here",
    ("evaluate.", "serve."): "evaluation measures the serving pipelines (the uncertainty map, the video fusion)",
    ("train.evaluate", "evaluate."): "deprecated alias `python -m train.evaluate`, removed after one release",
}
NEVER = {"serve": {"train"}, "ui": {"train"}, "app": {"train"}}


def project_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in LAYER or rel.name == "app.py" and len(rel.parts) == 1:
            yield path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: Set[str]) -> List[Tuple[str, bool, int]]:
    """(imported project module, imported at module level?, line) for every import in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a non-module attribute -> its module
                target = target.rpartition(".")[0]
            if target:
                found.append((target, id(node) not in lazy_nodes, node.lineno))
    return found


@functools.lru_cache(maxsize=1)
def graph() -> Dict[str, List[Tuple[str, bool, int]]]:
    files = list(project_files())
    modules = {module_name(p) for p in files}
    return {module_name(p): imports(p, modules) for p in files}


def top(module: str) -> str:
    return module.split(".")[0]


def sideways_reason(importer: str, imported: str) -> str:
    for (who, what), why in SIDEWAYS.items():
        who_matches = importer == who or who.endswith(".") and importer.startswith(who)
        if who_matches and imported.startswith(what.rstrip(".")):
            return why
    return ""


def layer_violations(edges) -> List[str]:
    problems = []
    for importer, targets in edges.items():
        for imported, _, line in targets:
            src, dst = top(importer), top(imported)
            if src == dst:
                continue
            if dst in NEVER.get(src, ()):
                problems.append(f"{importer}:{line} imports {imported}: {src} must never import {dst}")
            elif LAYER[dst] >= LAYER[src] and not sideways_reason(importer, imported):
                problems.append(f"{importer}:{line} imports {imported}: {src} (layer {LAYER[src]}) may only "
                                f"import lower layers, not {dst} (layer {LAYER[dst]})")
    return problems


def find_cycle(nodes: Dict[str, Set[str]]) -> List[str]:
    """One cycle of the directed graph as a path [a, b, ..., a], or [] (iterative DFS)."""
    state: Dict[str, int] = {}
    for start in sorted(nodes):
        if state.get(start):
            continue
        stack, path = [(start, iter(sorted(nodes.get(start, ()))))], [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(nodes.get(child, ())))))
                path.append(child)
    return []


def test_every_import_follows_the_layers():
    problems = layer_violations(graph())
    assert not problems, "wrong-way imports:\n" + "\n".join(problems)


def test_no_cycle_between_packages_at_module_level():
    packages: Dict[str, Set[str]] = {}
    for importer, targets in graph().items():
        packages.setdefault(top(importer), set()).update(top(t) for t, eager, _ in targets
                                                        if eager and top(t) != top(importer))
    cycle = find_cycle(packages)
    assert not cycle, "package import cycle: " + " -> ".join(cycle)


def test_no_module_import_cycle():
    """A chain of imports (lazy ones included) never comes back; a package's own __init__ does not count."""
    modules = {m: {t for t, _, _ in targets if not m.startswith(t + ".") and t != m}
               for m, targets in graph().items()}
    cycle = find_cycle(modules)
    assert not cycle, "module import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_a_wrong_way_import():
    assert layer_violations({"serve.tiling": [("train.data", True, 1)]})
    assert layer_violations({"models.registry": [("serve.runtime", False, 1)]})
    assert not layer_violations({"serve.runtime": [("export.onnx_export", False, 1)]})
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
