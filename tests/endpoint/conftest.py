"""Endpoint fixtures: engines, `_udp` twins and a server certificate."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from py_libp2p_webtransport import engine as _engine_package
from py_libp2p_webtransport._compat import NO_EXTENSIONS

# Until the engine adapters are merged, the endpoint tests have nothing to drive.
if not hasattr(_engine_package, "available_engines"):  # pragma: no cover
    collect_ignore = ["test_endpoint.py"]
    ENGINES: list[str] = []
else:
    ENGINES = _engine_package.available_engines()


def _udp_twins() -> list[object]:
    params: list[object] = [pytest.param("py", id="udp-py")]
    if not NO_EXTENSIONS:
        params.insert(0, pytest.param("c", id="udp-c", marks=pytest.mark.c_extension))
    return params


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=_udp_twins())
def udp(request: pytest.FixtureRequest) -> ModuleType:
    """The `_udp` twin the endpoints of a test use (passed as ``Endpoint.bind(udp=...)``)."""
    return importlib.import_module(f"py_libp2p_webtransport._udp_{request.param}")


@pytest.fixture(scope="session")
def certificate():  # type: ignore[no-untyped-def]
    """A self-signed ECDSA P-256 certificate with one extension (the libp2p shape)."""
    from endpoint_helpers import make_certificate

    return make_certificate()
