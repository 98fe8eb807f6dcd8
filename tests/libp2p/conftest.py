"""Fixtures for end-to-end tests: every test runs on both QUIC engines."""

from __future__ import annotations

import pytest
from wt_helpers import ENGINES

from py_libp2p_webtransport.engine import available_engines


def _engine_params() -> list[object]:
    installed = available_engines()
    return [
        pytest.param(
            name, marks=pytest.mark.skipif(name not in installed, reason=f"{name} unavailable")
        )
        for name in ENGINES
    ]


@pytest.fixture(params=_engine_params())
def engine(request: pytest.FixtureRequest) -> str:
    """The QUIC engine under test (every host of a test uses it)."""
    return str(request.param)
