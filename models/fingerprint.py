"""A fingerprint of the code that builds a registered model's graph, read without importing torch.

An ONNX export depends on the weights *and* on the architecture's source: a graph change with the
same checkpoint (a new head, an extra input) must not reuse an older export. `code_fingerprint`
hashes the code (the syntax tree, without docstrings and comments) of the architecture's module and
of every `models/` module it imports (transitively, found with `ast`, so a lean install without torch
can compute it), and the spec's constructor kwargs. Export sidecars record it; export/onnx_files.py
compares it.
"""
from __future__ import annotations

import ast
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Dict, FrozenSet, Tuple

PACKAGE_DIR = Path(__file__).resolve().parent


def _imported_siblings(source: str) -> FrozenSet[str]:
    """Names of the models/ modules a source file imports (`from .x import`, `from models.x import`,
    `from . import x`), anywhere in the file, including imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level == 1:
            names.update([module.split(".")[0]] if module else [alias.name for alias in node.names])
        elif node.level == 0 and module.startswith("models."):
            names.add(module.split(".")[1])
    return frozenset(names)


def _code_only(source: str) -> str:
    """The module's syntax tree without docstrings (comments never reach it), as text: editing
    documentation does not make exports stale, any change to the code does."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@cache
def module_sources(module: str) -> Dict[str, str]:
    """{file name: code (docstring-free syntax tree)} of models/MODULE.py and every models/ module it
    reaches by imports."""
    found: Dict[str, str] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = PACKAGE_DIR / f"{name}.py"
        if path.name in found or not path.exists():
            continue
        source = path.read_text(encoding="utf-8")
        found[path.name] = _code_only(source)
        pending.extend(_imported_siblings(source))
    return found


def code_fingerprint(arch_path: str, kwargs: Dict, extra_modules: Tuple[str, ...] = ()) -> str:
    """SHA-256 (hex) of the code behind ARCHITECTURES entry `arch_path` (".module:Class"), of
    `extra_modules` (wrappers an export adds, e.g. "mc_wrapper") and of `kwargs`."""
    sources: Dict[str, str] = {}
    for module in (arch_path.partition(":")[0].lstrip("."), *extra_modules):
        sources.update(module_sources(module))
    digest = hashlib.sha256()
    for name, source in sorted(sources.items()):
        digest.update(f"{name}\0{source}\0".encode())
    digest.update(json.dumps({"class": arch_path, "kwargs": kwargs}, sort_keys=True, default=str).encode())
    return digest.hexdigest()
