"""Endpoint fixtures: `_udp` twins and a server certificate (engines: ``tests/conftest.py``)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from support.endpoint_helpers import Certificate, make_certificate

from py_libp2p_webtransport._compat import NO_EXTENSIONS


def _udp_twins() -> list[object]:
    params: list[object] = [pytest.param("py", id="udp-py")]
    if not NO_EXTENSIONS:
        params.insert(0, pytest.param("c", id="udp-c", marks=pytest.mark.c_extension))
    return params


@pytest.fixture(params=_udp_twins())
def udp(request: pytest.FixtureRequest) -> ModuleType:
    """The `_udp` twin the endpoints of a test use (passed as ``EndpointOptions(udp=...)``)."""
    return importlib.import_module(f"py_libp2p_webtransport._udp_{request.param}")


@pytest.fixture(scope="session")
def certificate() -> Certificate:
    """A self-signed ECDSA P-256 certificate with one extension (the libp2p shape)."""
    return make_certificate()
