"""The session layer is sans-IO: no trio, no libp2p, no sockets, no clock (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import py_libp2p_webtransport.session as session_pkg

FORBIDDEN_MODULES = ("trio", "libp2p", "socket", "asyncio", "time", "select", "qh3", "aioquic")
# Inside the package, the session may use only these siblings (the engine via its interface).
ALLOWED_SIBLINGS = ("_wire", "constants", "errors", "engine", "engine.base")


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, level) of every import statement in a file."""
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 2 and node.module is None:  # "from .. import _wire"
                out.extend((alias.name, 2) for alias in node.names)
            else:
                out.append((node.module or "", node.level))
    return out


def test_session_modules_import_no_io_or_libp2p() -> None:
    files = sorted(Path(session_pkg.__file__).parent.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for module, level in _imports(path):
            if level == 0:
                top = module.split(".")[0]
                assert top not in FORBIDDEN_MODULES, f"{path.name} imports {module}"
                assert top != "py_libp2p_webtransport", f"{path.name}: use relative imports"
            elif level == 2:
                assert module in ALLOWED_SIBLINGS, f"{path.name} imports ..{module}"


def test_checker_sees_forbidden_imports(tmp_path: Path) -> None:
    # The rule above must be able to fail: a file that imports trio is caught.
    bad = tmp_path / "bad.py"
    bad.write_text("import trio\nfrom libp2p.abc import IHost\nfrom .. import listener\n")
    assert _imports(bad) == [("trio", 0), ("libp2p.abc", 0), ("listener", 2)]
