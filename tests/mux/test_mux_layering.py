"""The `_mux` twins are sans-IO: no trio, no libp2p, no clock, no sockets in their own imports."""

from __future__ import annotations

import ast
from pathlib import Path

import py_libp2p_webtransport

PACKAGE = Path(py_libp2p_webtransport.__file__).parent
REPO = PACKAGE.parent
FORBIDDEN = {"trio", "libp2p", "time", "socket", "asyncio", "select"}


def imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_twin_imports_nothing_io_bound() -> None:
    tree = ast.parse((PACKAGE / "_mux_py.py").read_text())
    assert imported_roots(tree) & FORBIDDEN == set()


def test_compiled_twin_source_imports_nothing_io_bound() -> None:
    source = REPO / "csrc" / "_mux_c.pyx"
    roots = set()
    for line in source.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("import", "from", "cimport"):
            roots.add(words[1].split(".")[0])
    assert "py_libp2p_webtransport" in roots  # the scan does see the imports
    assert roots & FORBIDDEN == set()
