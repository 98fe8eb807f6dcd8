"""The pump sends a task's reply in the same packet as the ACK of the request it answers.

A connection that only received in a pump turn transmits after the tasks woken by its events
have run (``Endpoint._turn``): a request/response exchange then costs one datagram each way,
not an ACK-only datagram plus the reply (which also wakes the peer twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import trio
from support.endpoint_helpers import endpoint_pair

from py_libp2p_webtransport.endpoint import EndpointConnection
from py_libp2p_webtransport.engine.base import EngineEvent, HandshakeCompleted, StreamDataReceived

ROUNDS = 60
SIZE = 32


@dataclass
class TaskHandler:
    """Hands every stream's bytes to a trio task (as the libp2p glue does) instead of
    answering inside the pump."""

    received: bytearray = field(default_factory=bytearray)
    changed: trio.Event = field(default_factory=trio.Event)
    handshake: trio.Event = field(default_factory=trio.Event)

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[EngineEvent], now: float
    ) -> None:
        for ev in events:
            if isinstance(ev, HandshakeCompleted):
                self.handshake.set()
            elif isinstance(ev, StreamDataReceived):
                self.received += ev.data
                conn.engine.consume(ev.stream_id, len(ev.data))
                self.changed.set()
                self.changed = trio.Event()

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("no timer was asked for")

    async def read(self, n: int) -> bytes:
        while len(self.received) < n:
            await self.changed.wait()
        # Schedule points between the wake-up and the reply, like py-libp2p's stream locks.
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        data = bytes(self.received[:n])
        del self.received[:n]
        return data


# qh3 only (not a skip): aioquic acknowledges after 1 ms (its _ack_delay is K_GRANULARITY)
# whatever the pump does, so on a loaded machine its ACK-only packets measure the machine.
@pytest.mark.parametrize("engine", ["qh3"])
async def test_replies_ride_with_acks(engine, udp, certificate) -> None:  # type: ignore[no-untyped-def]
    async def serve(server_handlers: dict[EndpointConnection, TaskHandler], sid: int) -> None:
        ((conn, handler),) = server_handlers.items()
        for _ in range(ROUNDS):
            data = await handler.read(SIZE)
            conn.engine.send_stream_data(sid, data)
            conn.transmit_soon()

    async with endpoint_pair(
        engine, udp, certificate, handler_type=TaskHandler, timeout=30
    ) as pair:
        server = pair.server
        conn, handler = await pair.connect(TaskHandler())
        sid = conn.engine.get_next_available_stream_id()
        # Warm-up round: the server's task starts and the handshake's last packets settle.
        conn.engine.send_stream_data(sid, bytes(SIZE))
        conn.transmit_soon()
        while not pair.handlers:
            await trio.sleep(0.001)
        pair.nursery.start_soon(serve, pair.handlers, sid)
        assert await handler.read(SIZE) == bytes(SIZE)
        sent_before = server.stats.datagrams_sent
        for i in range(1, ROUNDS):
            payload = i.to_bytes(SIZE, "big")
            conn.engine.send_stream_data(sid, payload)
            conn.transmit_soon()
            assert await handler.read(SIZE) == payload
        sent = server.stats.datagrams_sent - sent_before
        # One datagram per reply; a little slack for ACK timers on a loaded machine.
        # Transmitting right after each receive sends ~1.5 per reply (an ACK-only packet
        # every other round, as QUIC acknowledges every second packet at once).
        assert sent <= (ROUNDS - 1) * 1.2, f"{sent} datagrams for {ROUNDS - 1} replies"
