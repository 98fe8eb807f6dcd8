"""Real py-libp2p host pairs on loopback for the perf tests.

``host_pair`` yields (server, client) connected hosts over each transport that is available:
py-libp2p's TCP always (its QUIC drops stream tails now and then, see
test_perf.py), this package's WebTransport and its QUIC transport (``quic-v1-*``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

try:
    from py_libp2p_webtransport.config import WebTransportConfig
    from py_libp2p_webtransport.transport import WebTransportTransport
except ImportError:  # the transport lands on main later; until then only TCP runs
    OURS_MISSING = "py_libp2p_webtransport.transport has not landed yet"
else:
    OURS_MISSING = ""

TRANSPORTS = [
    pytest.param("tcp"),
    *(
        pytest.param(
            f"webtransport-{engine}",
            marks=pytest.mark.skipif(bool(OURS_MISSING), reason=OURS_MISSING),
        )
        for engine in ("qh3", "aioquic")
    ),
    *(pytest.param(f"quic-v1-{engine}") for engine in ("qh3", "aioquic")),
]


def _make_host(kind: str) -> tuple[IHost, Multiaddr]:
    kp = create_new_key_pair()
    if kind == "tcp":
        addr = Multiaddr("/ip4/127.0.0.1/tcp/0")
        return new_host(key_pair=kp, listen_addrs=[addr]), addr
    if kind == "quic":
        addr = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")
        return new_host(key_pair=kp, enable_quic=True, listen_addrs=[addr]), addr
    if kind.startswith("quic-v1-"):
        from py_libp2p_webtransport.quic_transport import QuicTransport

        addr = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")
        quic = QuicTransport(kp.private_key, WebTransportConfig(engine=kind.rsplit("-", 1)[1]))
        return new_host(key_pair=kp, transports=[quic], listen_addrs=[addr]), addr
    engine = kind.split("-", 1)[1]
    addr = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine))
    return new_host(key_pair=kp, transports=[transport], listen_addrs=[addr]), addr


@asynccontextmanager
async def connected_pair(kind: str) -> AsyncIterator[tuple[IHost, IHost]]:
    """Two running hosts of transport ``kind``, the client connected to the server."""
    server, server_addr = _make_host(kind)
    client, client_addr = _make_host(kind)
    async with server.run(listen_addrs=[server_addr]), client.run(listen_addrs=[client_addr]):
        with trio.fail_after(15):
            await client.connect(PeerInfo(server.get_id(), server.get_addrs()))
        yield server, client


@pytest.fixture(params=TRANSPORTS)
async def host_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[IHost, IHost]]:
    async with connected_pair(request.param) as pair:
        yield pair
