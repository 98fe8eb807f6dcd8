"""Helpers of the reliability suite: reach the transport's own state inside a running host and
sample its counters while traffic flows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.stream_muxer.exceptions import MuxedStreamEOF
from support.wt_helpers import transport_of

from py_libp2p_webtransport.conn import WebTransportConnection


def server_connections(host: IHost) -> list[WebTransportConnection]:
    """The live connections accepted by ``host``'s WebTransport listeners."""
    transport = transport_of(host)
    conns: list[WebTransportConnection] = []
    for listener in transport._listeners:
        conns.extend(listener.connections)
    return conns


def all_connections(host: IHost) -> list[WebTransportConnection]:
    """Every live connection of ``host``'s transport (dialed and accepted)."""
    transport = transport_of(host)
    found = set(transport._connections.snapshot())
    found.update(server_connections(host))
    return list(found)


class Sampler:
    """Records the peak of ``probe()`` every ``interval`` seconds until stopped."""

    def __init__(self, probe: Callable[[], int], interval: float = 0.005) -> None:
        self.probe = probe
        self.interval = interval
        self.peak = 0
        self.samples = 0

    def sample(self) -> None:
        value = self.probe()
        self.samples += 1
        if value > self.peak:
            self.peak = value

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self.sample()
            await trio.sleep(self.interval)


def unread_probe(host: IHost) -> Callable[[], int]:
    """Bytes delivered by the engine to ``host``'s accepted connections and not yet read."""

    def probe() -> int:
        return max((c.session.unread_bytes() for c in server_connections(host)), default=0)

    return probe


def stream_unread_probe(host: IHost) -> Callable[[], int]:
    """The largest per-stream unread byte count on ``host``'s accepted connections."""

    def probe() -> int:
        peak = 0
        for conn in server_connections(host):
            for sid in list(conn._streams):
                peak = max(peak, conn.session.unread_bytes(sid))
        return peak

    return probe


def send_buffer_probe(host: IHost) -> Callable[[], int]:
    """The largest per-stream count of written, unacknowledged bytes the engines of ``host``'s
    connections hold (what a writer to a stalled reader would pile up if it did not wait)."""

    def probe() -> int:
        peak = 0
        for conn in all_connections(host):
            for sid in list(conn._streams):
                peak = max(peak, conn.session.send_buffer_size(sid))
        return peak

    return probe


async def read_all(stream: Any) -> bytes:
    """Everything until the peer's FIN, on a libp2p ``NetStream`` or one of our raw streams
    (which end with ``StreamEnded``, a ``MuxedStreamEOF``)."""
    out = bytearray()
    try:
        while chunk := await stream.read(1 << 20):
            out += chunk
    except (StreamEOF, MuxedStreamEOF):
        pass
    return bytes(out)


async def read_some(stream: Any, n: int) -> bytes:
    """``stream.read(n)``, with the peer's FIN as ``b""`` (our streams raise ``StreamEnded``,
    which ``NetStream`` turns into ``StreamEOF``)."""
    try:
        data: bytes = await stream.read(n)
    except (StreamEOF, MuxedStreamEOF):
        return b""
    return data
