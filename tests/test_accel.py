"""The compiled twins load where they should, and both twins expose the same API."""

from __future__ import annotations

import importlib

import pytest

import py_libp2p_webtransport
from py_libp2p_webtransport._compat import NO_EXTENSIONS, REQUIRE_EXTENSIONS

UNITS = ("wire", "mux", "udp")


@pytest.mark.parametrize("unit", UNITS)
def test_facade_loaded_expected_twin(unit: str) -> None:
    facade = importlib.import_module(f"py_libp2p_webtransport._{unit}")
    # Our builds always compile the twins; a silent fallback to Python must fail loudly here.
    expected = "python" if NO_EXTENSIONS else "cython"
    assert not (REQUIRE_EXTENSIONS and NO_EXTENSIONS), "REQUIRE and NO_EXTENSIONS both set"
    assert facade.IMPLEMENTATION == expected, f"_{unit} facade loaded {facade.IMPLEMENTATION}"


def test_package_reports_implementation() -> None:
    expected = "python" if NO_EXTENSIONS else "cython"
    assert py_libp2p_webtransport.IMPLEMENTATION == expected


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="pure-Python run: no compiled twins expected")
@pytest.mark.parametrize("unit", UNITS)
def test_twins_export_same_names(unit: str) -> None:
    py = importlib.import_module(f"py_libp2p_webtransport._{unit}_py")
    c = importlib.import_module(f"py_libp2p_webtransport._{unit}_c")
    assert sorted(py.__all__) == sorted(c.__all__)
    assert py.IMPLEMENTATION == "python" and c.IMPLEMENTATION == "cython"
