"""``serve --stats``: one line every few seconds, and a per-connection dump on SIGUSR1.

Both read every transport of ours the host runs (WebTransport and QUIC, ``transports_of``):
their endpoints' ``EndpointStats`` (a socket the two share counted once) and their open
connections. Nothing is counted for them, and they run only when asked for.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import trio
from libp2p.abc import IHost

from ..endpoint import Endpoint
from ..endpoint.connection import EndpointStats
from ..muxed_conn import MuxedConnection
from ..transport_base import TransportBase

#: The transports the views read (``WebTransportTransport``, ``QuicTransport``).
Transports = Sequence[TransportBase[Any]]


def transports_of(host: IHost) -> list[TransportBase[Any]]:
    """Our transports in ``host`` (WebTransport first, as the host lists them)."""
    manager = getattr(host.get_network(), "transport_manager", None)
    found = manager.get_transports() if manager is not None else ()
    return [transport for transport in found if isinstance(transport, TransportBase)]


def endpoints(transports: Transports) -> list[Endpoint]:
    """The transports' UDP endpoints, each once (a listening socket may serve both)."""
    seen: dict[int, Endpoint] = {}
    for transport in transports:
        for endpoint in transport.endpoints():
            seen.setdefault(id(endpoint), endpoint)
    return list(seen.values())


def connections(transports: Transports) -> list[MuxedConnection]:
    """The transports' open connections, transport by transport."""
    return [conn for transport in transports for conn in transport.connections()]


@dataclass
class Totals:
    """The sums over the transports' endpoints that the line shows as rates."""

    bytes_in: int = 0
    bytes_out: int = 0
    new_connections: int = 0  # QUIC handshakes begun (accepted or dialed)
    dropped: int = 0

    @classmethod
    def of(cls, transports: Transports) -> Totals:
        totals = cls()
        for endpoint in endpoints(transports):
            stats: EndpointStats = endpoint.stats
            totals.bytes_in += stats.bytes_received
            totals.bytes_out += stats.bytes_sent
            totals.new_connections += stats.connections_accepted + stats.connections_opened
            totals.dropped += sum(
                value for name, value in stats.as_dict().items() if name.startswith("dropped_")
            )
        return totals


def stats_line(transports: Transports, before: Totals, now: Totals, dt: float) -> str:
    """``conns in=.. out=.. webtransport=.. quic=.. streams=.. | in .. MB/s out .. MB/s |
    handshakes/s .. | drops ..``."""
    conns = connections(transports)
    inbound = sum(not conn.is_initiator for conn in conns)
    per_transport = {"webtransport": 0, "quic": 0}
    for conn in conns:
        per_transport[conn.TRANSPORT_LABEL] += 1
    kinds = " ".join(f"{name}={count}" for name, count in per_transport.items())
    streams = sum(conn.stream_count for conn in conns)
    rate_in = (now.bytes_in - before.bytes_in) / dt / 1e6
    rate_out = (now.bytes_out - before.bytes_out) / dt / 1e6
    handshakes = (now.new_connections - before.new_connections) / dt
    return (
        f"conns in={inbound} out={len(conns) - inbound} {kinds} streams={streams} | "
        f"in {rate_in:.2f} MB/s out {rate_out:.2f} MB/s | handshakes/s {handshakes:.1f} | "
        f"drops {now.dropped - before.dropped}"
    )


async def print_stats(transports: Transports, interval: float, out: TextIO = sys.stderr) -> None:
    """Print ``stats_line`` every ``interval`` seconds, forever."""
    before, then = Totals.of(transports), trio.current_time()
    while True:
        await trio.sleep(interval)
        now, at = Totals.of(transports), trio.current_time()
        print(stats_line(transports, before, now, at - then), file=out, flush=True)
        before, then = now, at


def dump_connections(transports: Transports) -> str:
    """Every open connection's ``describe()`` (peer, RTT, window, bytes, streams, paused)."""
    conns = connections(transports)
    if not conns:
        return "no open connections"
    return "\n".join(conn.describe() for conn in conns)


async def dump_on_sigusr1(
    transports: Transports,
    out: TextIO = sys.stderr,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Print ``dump_connections`` each time the process gets SIGUSR1, forever (started once
    the handler is installed: SIGUSR1's default action would end the process)."""
    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        task_status.started()
        async for _ in signals:
            print(dump_connections(transports), file=out, flush=True)
