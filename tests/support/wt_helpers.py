"""Helpers for end-to-end tests: real py-libp2p hosts over loopback UDP (``tests/libp2p`` is on
sys.path when pytest collects these tests, so test modules import this as ``wt_helpers``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
from libp2p import new_host
from libp2p.abc import IHost, ITransport
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.quic.exceptions import QUICStreamClosedError
from multiaddr import Multiaddr

from py_libp2p_webtransport.apps.services import register_handlers
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.endpoint import Endpoint, EndpointOptions
from py_libp2p_webtransport.handshake import EndpointFor
from py_libp2p_webtransport.host import new_host as packaged_new_host
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN_V4 = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"
LISTEN_V6 = "/ip6/::1/udp/0/quic-v1/webtransport"
LISTEN_TCP = "/ip4/127.0.0.1/tcp/0"


@asynccontextmanager
async def wt_host(
    engine: str,
    *,
    key_pair: KeyPair | None = None,
    listen: Sequence[str] = (LISTEN_V4,),
    extra_transports: Sequence[ITransport] = (),
    **config: Any,
) -> AsyncIterator[IHost]:
    """A running host with our transport (plus ``extra_transports``), serving echo and perf."""
    kp = key_pair or create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine, **config))
    addrs = [Multiaddr(a) for a in listen]
    host = new_host(key_pair=kp, transports=[transport, *extra_transports], listen_addrs=addrs)
    register_handlers(host)
    async with host.run(listen_addrs=addrs):
        try:
            yield host
        finally:
            await transport.close()


@asynccontextmanager
async def packaged_host(
    engine: str,
    *,
    listen: Sequence[str] = (LISTEN_V4, LISTEN_TCP),
    clock: Any = time.time,
    **options: Any,
) -> AsyncIterator[IHost]:
    """A running host from the package's ``new_host`` (TCP + WebTransport, identify fix,
    certhashes, rotation announced), serving echo and perf; ``options`` go to ``new_host``."""
    addrs = [Multiaddr(a) for a in listen]
    config = WebTransportConfig(engine=engine, clock=clock)
    host = packaged_new_host(listen_addrs=addrs, config=config, **options)
    register_handlers(host)
    async with host.run(listen_addrs=addrs):
        try:
            yield host
        finally:
            await transport_of(host).close()


@asynccontextmanager
async def client_endpoint(engine: str, host: str = "127.0.0.1") -> AsyncIterator[EndpointFor]:
    """A running client endpoint, as the ``endpoint_for`` of ``handshake.dial_session``.

    An error of the body leaves unwrapped (not in the pump nursery's ExceptionGroup).
    """
    endpoint = await Endpoint.bind(host, 0, EndpointOptions(engine=engine))

    async def endpoint_for(family: int) -> Endpoint:
        return endpoint

    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(endpoint.run)
        try:
            yield endpoint_for
        except Exception as exc:
            error = exc
        finally:
            endpoint.close()
    if error is not None:
        raise error


def wt_addrs(host: IHost) -> list[Multiaddr]:
    """The host's WebTransport listen addresses (without /p2p)."""
    return [a for a in host.get_transport_addrs() if "webtransport" in str(a)]


def peer_info(host: IHost, addrs: Sequence[Multiaddr] | None = None) -> PeerInfo:
    """How to reach ``host`` over WebTransport."""
    return PeerInfo(host.get_id(), list(addrs if addrs is not None else wt_addrs(host)))


def transport_of(host: IHost) -> WebTransportTransport:
    """Our transport instance inside ``host``."""
    for t in host.get_network().transport_manager.get_transports():  # type: ignore[attr-defined]
        if isinstance(t, WebTransportTransport):
            return t
    raise LookupError("no WebTransportTransport in host")


async def read_to_end(stream: Any) -> bytes:
    """Everything until the end of the stream (``StreamEOF``: how py-libp2p's muxers and ours
    signal the peer's FIN)."""
    out = bytearray()
    try:
        while chunk := await stream.read(1 << 20):
            out += chunk
    except StreamEOF:
        pass
    except StreamReset as error:
        # py-libp2p 0.8's QUIC (only) raises QUICStreamClosedError, wrapped as StreamReset, from
        # a read once both directions ended with FIN: that is its EOF. Our streams never do.
        if not isinstance(error.__cause__, QUICStreamClosedError):
            raise
    return bytes(out)
