"""``serve --stats``: one line every few seconds, and a per-connection dump on SIGUSR1.

The line is computed from what the transport already counts (``EndpointStats`` of its
endpoints, its open connections): nothing is counted for it, and it runs only when asked for.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import trio

from ..endpoint.connection import EndpointStats
from ..transport import WebTransportTransport


@dataclass
class Totals:
    """The sums over a transport's endpoints that the line shows as rates."""

    bytes_in: int = 0
    bytes_out: int = 0
    new_connections: int = 0  # QUIC handshakes begun (accepted or dialed)
    dropped: int = 0

    @classmethod
    def of(cls, transport: WebTransportTransport) -> Totals:
        totals = cls()
        for endpoint in transport.endpoints():
            stats: EndpointStats = endpoint.stats
            totals.bytes_in += stats.bytes_received
            totals.bytes_out += stats.bytes_sent
            totals.new_connections += stats.connections_accepted + stats.connections_opened
            totals.dropped += sum(
                value for name, value in stats.as_dict().items() if name.startswith("dropped_")
            )
        return totals


def stats_line(transport: WebTransportTransport, before: Totals, now: Totals, dt: float) -> str:
    """``conns in=.. out=.. streams=.. | in .. MB/s out .. MB/s | handshakes/s .. | drops ..``."""
    conns = transport.connections()
    inbound = sum(not conn.is_initiator for conn in conns)
    streams = sum(conn.stream_count for conn in conns)
    rate_in = (now.bytes_in - before.bytes_in) / dt / 1e6
    rate_out = (now.bytes_out - before.bytes_out) / dt / 1e6
    handshakes = (now.new_connections - before.new_connections) / dt
    return (
        f"conns in={inbound} out={len(conns) - inbound} streams={streams} | "
        f"in {rate_in:.2f} MB/s out {rate_out:.2f} MB/s | handshakes/s {handshakes:.1f} | "
        f"drops {now.dropped - before.dropped}"
    )


async def print_stats(
    transport: WebTransportTransport, interval: float, out: TextIO = sys.stderr
) -> None:
    """Print ``stats_line`` every ``interval`` seconds, forever."""
    before, then = Totals.of(transport), trio.current_time()
    while True:
        await trio.sleep(interval)
        now, at = Totals.of(transport), trio.current_time()
        print(stats_line(transport, before, now, at - then), file=out, flush=True)
        before, then = now, at


def dump_connections(transport: WebTransportTransport) -> str:
    """Every open connection's ``describe()`` (peer, RTT, window, bytes, streams, paused)."""
    conns = transport.connections()
    if not conns:
        return "no open connections"
    return "\n".join(conn.describe() for conn in conns)


async def dump_on_sigusr1(
    transport: WebTransportTransport,
    out: TextIO = sys.stderr,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Print ``dump_connections`` each time the process gets SIGUSR1, forever (started once
    the handler is installed: SIGUSR1's default action would end the process)."""
    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        task_status.started()
        async for _ in signals:
            print(dump_connections(transport), file=out, flush=True)
