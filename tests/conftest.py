"""Shared fixtures: the QUIC engine under test, and the compiled/pure twin switch
(multidict/propcache pattern).

Every test that takes ``engine`` runs once per QUIC engine (qh3, aioquic). Every unit test of an
accelerated module takes ``<unit>_module`` and so runs against both twins. ``--no-c-extensions``
deselects the compiled ones (used for the pure-Python CI pass). Shared helpers live in the
``support`` package beside this file.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from types import ModuleType

import pytest

from py_libp2p_webtransport._compat import NO_EXTENSIONS
from py_libp2p_webtransport.engine import available_engines

C_EXT_MARK = pytest.mark.c_extension
ENGINES = ("qh3", "aioquic")


def _engine_params() -> list[object]:
    installed = available_engines()
    return [
        pytest.param(
            name, marks=pytest.mark.skipif(name not in installed, reason=f"{name} missing")
        )
        for name in ENGINES
    ]


@pytest.fixture(params=_engine_params())
def engine(request: pytest.FixtureRequest) -> str:
    """The QUIC engine under test: every engine, connection and host of the test uses it."""
    return str(request.param)


ACCELERATED_UNITS = ("wire", "mux", "udp")


@dataclass(frozen=True)
class Implementation:
    """One twin of an accelerated unit."""

    unit: str
    is_pure_python: bool

    @property
    def tag(self) -> str:
        return "pure-python" if self.is_pure_python else "c-extension"

    def __str__(self) -> str:
        return self.tag

    @property
    def module(self) -> ModuleType:
        suffix = "py" if self.is_pure_python else "c"
        return importlib.import_module(f"py_libp2p_webtransport._{self.unit}_{suffix}")


def _twin_params(unit: str) -> list[object]:
    params: list[object] = [pytest.param(Implementation(unit, True), id="pure-python")]
    if not NO_EXTENSIONS:
        params.insert(
            0, pytest.param(Implementation(unit, False), id="c-extension", marks=C_EXT_MARK)
        )
    return params


def _module_fixture(unit: str):  # type: ignore[no-untyped-def]
    @pytest.fixture(scope="session", params=_twin_params(unit))
    def fixture(request: pytest.FixtureRequest) -> ModuleType:
        impl: Implementation = request.param
        return impl.module

    return fixture


wire_module = _module_fixture("wire")
mux_module = _module_fixture("mux")
udp_module = _module_fixture("udp")


@pytest.fixture(scope="session")
def both_wire_modules() -> list[ModuleType]:
    """Every loadable twin of _wire, for round trips that cross implementations."""
    return [p.values[0].module for p in _twin_params("wire")]  # type: ignore[attr-defined]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--c-extensions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run tests of the compiled twins (default: yes)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--c-extensions"):
        return
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("c_extension") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
