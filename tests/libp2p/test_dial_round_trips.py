"""A dial spends no round trip it can avoid: Noise starts with the CONNECT, not after its answer."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from support.wt_helpers import transport_of, wt_addrs, wt_host

from py_libp2p_webtransport import handshake
from py_libp2p_webtransport.conn import WebTransportConnection

DIALS = 3
# The server answers each CONNECT once that dial's Noise has started, or after this long if it
# does not start (a dial that waits for the answer): the outcome never depends on scheduling.
ANSWER_DELAY = 1.0


async def test_noise_starts_before_the_connect_is_answered(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered_before_noise: list[bool] = []
    noise_started = trio.Semaphore(0)
    noise_initiator = handshake.handshake_outbound

    async def recording(stream: Any, *args: Any, **kwargs: Any) -> Any:
        answered_before_noise.append(stream._conn.session_ready.is_set())
        noise_started.release()
        return await noise_initiator(stream, *args, **kwargs)

    accept_now = WebTransportConnection._on_session_requested

    def accept_late(self: WebTransportConnection, event: Any) -> None:
        async def later() -> None:
            with trio.move_on_after(ANSWER_DELAY):
                await noise_started.acquire()
            if not self.is_closed:
                accept_now(self, event)
                self._ep_conn.transmit_soon()

        trio.lowlevel.spawn_system_task(later)

    monkeypatch.setattr(handshake, "handshake_outbound", recording)
    monkeypatch.setattr(WebTransportConnection, "_on_session_requested", accept_late)
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
    # Noise message 1 left while the CONNECT was still unanswered, on every dial.
    assert answered_before_noise == [False] * DIALS
