"""Engine fixtures: a certificate, and every client/server pair of installed engines (one engine on
both sides: ``engine`` in ``tests/conftest.py``)."""

from __future__ import annotations

import itertools

import pytest
from support.enginepair import ServerCertificate, make_certificate

from py_libp2p_webtransport.engine import available_engines

ENGINES = available_engines()
PAIRS = list(itertools.product(ENGINES, ENGINES))


@pytest.fixture(scope="session")
def cert() -> ServerCertificate:
    return make_certificate()


@pytest.fixture(params=PAIRS, ids=[f"{c}-to-{s}" for c, s in PAIRS])
def engine_pair(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(client engine, server engine), including the cross pairs."""
    client, server = request.param
    return str(client), str(server)
