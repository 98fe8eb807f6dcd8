"""Fixtures for the reliability suite: every test runs on both QUIC engines, with real py-libp2p
hosts on loopback (helpers shared with ``tests/libp2p``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The end-to-end helpers (wt_host, peer_info, ...) live beside the libp2p tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "libp2p"))

from wt_helpers import ENGINES  # noqa: E402

from py_libp2p_webtransport.engine import available_engines  # noqa: E402


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
