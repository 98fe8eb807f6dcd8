"""The `_wire` twins are sans-IO: they import only constants and errors (plus C headers)."""

from __future__ import annotations

import ast
from pathlib import Path

import py_libp2p_webtransport

PACKAGE = Path(py_libp2p_webtransport.__file__).parent
REPO = PACKAGE.parent


def test_pure_twin_imports_only_constants_and_errors() -> None:
    imports = set()
    for node in ast.walk(ast.parse((PACKAGE / "_wire_py.py").read_text())):
        if isinstance(node, ast.Import):
            imports.update((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.add((node.module or "", node.level))
    assert imports == {("__future__", 0), ("constants", 1), ("errors", 1)}


def test_compiled_twin_imports_only_c_headers_constants_and_errors() -> None:
    modules = set()
    for line in (REPO / "csrc" / "_wire_c.pyx").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("import", "from", "cimport"):
            modules.add(words[1])
    assert "quicvarint" in modules  # the scan sees the imports
    allowed = {"quicvarint", "py_libp2p_webtransport.constants", "py_libp2p_webtransport.errors"}
    assert {m for m in modules if not m.startswith(("cpython", "libc"))} == allowed
