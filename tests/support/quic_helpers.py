"""Helpers for end-to-end tests of ``/quic-v1``: real py-libp2p hosts with our ``QuicTransport``
(and ``WebTransportTransport`` on the same socket) over loopback UDP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from multiaddr import Multiaddr

from py_libp2p_webtransport.apps.services import register_handlers
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.quic_transport import QuicTransport
from py_libp2p_webtransport.transport import WebTransportTransport

QUIC_V4 = "/ip4/127.0.0.1/udp/0/quic-v1"
WT_V4 = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"


@asynccontextmanager
async def quic_host(
    engine: str, listen: Sequence[str] = (QUIC_V4,), *, webtransport: bool = False, **config: Any
) -> AsyncIterator[IHost]:
    """A running host with our QUIC transport (and WebTransport on the same socket), serving
    echo and perf; ``config`` goes to both transports' ``WebTransportConfig``."""
    kp = create_new_key_pair()
    wt_config = WebTransportConfig(engine=engine, **config)
    transports: list[Any] = [QuicTransport(kp.private_key, wt_config)]
    if webtransport:
        transports.insert(0, WebTransportTransport(kp.private_key, wt_config))
    addrs = [Multiaddr(a) for a in listen]
    host = new_host(key_pair=kp, transports=transports, listen_addrs=addrs)
    register_handlers(host)
    async with host.run(listen_addrs=addrs):
        try:
            yield host
        finally:
            for transport in transports:
                await transport.close()


def quic_of(host: IHost) -> QuicTransport:
    """Our QUIC transport inside ``host``."""
    for t in host.get_network().transport_manager.get_transports():  # type: ignore[attr-defined]
        if isinstance(t, QuicTransport):
            return t
    raise LookupError("no QuicTransport")


def quic_addrs(host: IHost) -> list[Multiaddr]:
    """The host's ``/quic-v1`` listen addresses (without /p2p)."""
    return [a for a in host.get_transport_addrs() if "webtransport" not in str(a)]
