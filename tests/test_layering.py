"""The layers hold at run time: importing a floor module loads no trio, no libp2p, no
prometheus_client and no module of the layers above it (docs/architecture.md, "Layers").

Each module is imported in a fresh interpreter and ``sys.modules`` is read afterwards, so an
indirect import (a floor module importing a glue module that imports libp2p) is caught, which a
scan of import lines would miss.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from py_libp2p_webtransport._compat import NO_EXTENSIONS

PACKAGE = "py_libp2p_webtransport"

# Sans-IO floor: bytes in, bytes and events out; no sockets, no event loop, no libp2p.
FLOOR = [
    "_errors",
    "constants",
    "_compat",
    "_wire",
    "_wire_py",
    "_mux",
    "_mux_py",
    "session",
    "session.connection",
    "session.http3",
    "session.sessions",
    "session.headers",
    "session.settings",
    "engine",
    "engine.base",
    "engine.aioquic",
    "engine.qh3",
    "engine.qh3.send_gate",
    "engine.qh3.fin_hold",
    "engine.qh3.zero_length_cid",
    "engine.qlog",
    "engine.quic_config",
    "endpoint.quic_header",
    "endpoint.retry",
    "endpoint.deadlines",
    "endpoint.admission",
    "endpoint.connection",
    "endpoint.options",
    "endpoint.registry",
]
COMPILED = ["_wire_c", "_mux_c"]
# The UDP twins and the pump use sockets (and the pump trio), but never libp2p.
IO_WITHOUT_LIBP2P = ["_udp", "_udp_py", "endpoint", "endpoint.udp_socket", "endpoint.pump"]
# The libp2p glue and everything on it: the floor must never load these.
ABOVE_FLOOR = [
    "errors",
    "muxed_conn",
    "conn",
    "stream",
    "handshake",
    "transport",
    "listener",
    "noise",
    "certs",
    "libp2p_tls",
    "quic_conn",
    "quic_transport",
    "shared_endpoint",
    "config",
    "metrics",
    "endpoint.pump",
    "apps",
    "cli",
]
# Sans-IO modules of the glue: they need libp2p (keys, peer ids, its error types, and libp2p's
# package loads trio), but no event loop of their own: none imports trio itself, and none loads
# the trio-driven modules of this package.
SANS_IO_GLUE = ["noise", "certs", "libp2p_tls", "multiaddr"]
TRIO_DRIVEN = [
    "muxed_conn",
    "conn",
    "stream",
    "handshake",
    "transport",
    "listener",
    "quic_conn",
    "quic_transport",
    "shared_endpoint",
    "endpoint.pump",
    "apps",
]

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(module: str) -> set[str]:
    """Every module ``sys.modules`` holds after importing ``module`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, f"{PACKAGE}.{module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout))


def offenders(loaded: set[str], forbidden: list[str]) -> list[str]:
    return sorted(
        name for name in loaded if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


FLOOR_PARAMS = FLOOR + (
    [] if NO_EXTENSIONS else [pytest.param(m, marks=pytest.mark.c_extension) for m in COMPILED]
)


@pytest.mark.parametrize("module", FLOOR_PARAMS)
def test_floor_module_loads_no_trio_libp2p_or_upper_layer(module: str) -> None:
    loaded = loaded_by(module)
    assert f"{PACKAGE}.{module}" in loaded  # the probe did import it
    above = [f"{PACKAGE}.{name}" for name in ABOVE_FLOOR]
    assert offenders(loaded, ["trio", "libp2p", "prometheus_client", *above]) == []


@pytest.mark.parametrize("module", IO_WITHOUT_LIBP2P)
def test_io_modules_load_no_libp2p(module: str) -> None:
    loaded = loaded_by(module)
    glue = [f"{PACKAGE}.{name}" for name in ABOVE_FLOOR if name != "endpoint.pump"]
    assert offenders(loaded, ["libp2p", "prometheus_client", *glue]) == []


def imports_of(module: str) -> set[str]:
    """The top-level names of the modules that ``module``'s source imports (any depth)."""
    path = Path(__file__).parents[1] / PACKAGE / (module.replace(".", "/") + ".py")
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", SANS_IO_GLUE)
def test_sans_io_glue_imports_no_trio_and_loads_no_trio_driven_module(module: str) -> None:
    assert "trio" not in imports_of(module)
    loaded = loaded_by(module)
    assert offenders(loaded, [f"{PACKAGE}.{name}" for name in TRIO_DRIVEN]) == []


def test_the_probe_sees_an_indirect_import() -> None:
    # The rule must be able to fail: the glue's error module loads libp2p through its imports.
    loaded = loaded_by("errors")
    assert offenders(loaded, ["libp2p"]) != []
    assert offenders(loaded, ["trio"]) != []  # libp2p itself imports trio


def test_the_package_root_loads_nothing_until_a_public_name_is_used() -> None:
    assert offenders(loaded_by_root("import py_libp2p_webtransport"), ["trio", "libp2p"]) == []
    used = loaded_by_root("from py_libp2p_webtransport import WebTransportTransport, DialError")
    assert f"{PACKAGE}.transport" in used


def test_every_public_error_is_reachable_from_the_root() -> None:
    import py_libp2p_webtransport
    from py_libp2p_webtransport import errors

    for name in errors.__all__:
        assert getattr(py_libp2p_webtransport, name) is getattr(errors, name), name
    assert set(errors.__all__) <= set(py_libp2p_webtransport.__all__)


def loaded_by_root(statement: str) -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout))
