"""The engine layer is sans-IO: no trio, no libp2p, no sockets, no clock (DESIGN.md)."""

from __future__ import annotations

import ast
import pathlib

import pytest

import py_libp2p_webtransport.engine as engine_package

FORBIDDEN = {"trio", "libp2p", "socket", "time", "asyncio", "select", "threading"}
MODULES = sorted(pathlib.Path(engine_package.__file__).parent.glob("*.py"))


def imported_roots(path: pathlib.Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_engine_module_imports_no_io_or_clock(path: pathlib.Path) -> None:
    assert not imported_roots(path) & FORBIDDEN


def test_every_engine_module_was_checked() -> None:
    names = {p.name for p in MODULES}
    assert {"base.py", "aioquic.py", "qh3.py", "qh3_zero_length_cid.py"} <= names
