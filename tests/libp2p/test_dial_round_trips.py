"""A dial spends no round trip it can avoid: Noise starts with the CONNECT, not after its answer."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from wt_helpers import transport_of, wt_addrs, wt_host

from py_libp2p_webtransport.transport import WebTransportTransport

DIALS = 5


async def test_noise_starts_before_the_connect_is_answered(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered_before_noise: list[bool] = []
    noise_initiator = WebTransportTransport._noise_initiator

    async def recording(self: WebTransportTransport, stream: Any, *args: Any) -> Any:
        answered_before_noise.append(stream._conn.session_ready.is_set())
        return await noise_initiator(self, stream, *args)

    monkeypatch.setattr(WebTransportTransport, "_noise_initiator", recording)
    with trio.fail_after(60):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            transport = transport_of(client)
            for _ in range(DIALS):
                conn = await transport.dial(addr)
                # The session was checked before the connection was handed out.
                assert conn.session_ready.is_set() and conn.session_rejected is None
                assert conn.is_established
                await conn.close()
    # The server's SETTINGS ride with its handshake flight, so the CONNECT (and with it the
    # first Noise message) leaves as soon as the handshake completes, every time.
    assert answered_before_noise == [False] * DIALS
