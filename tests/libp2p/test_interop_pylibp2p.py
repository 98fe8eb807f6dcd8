"""Interop with py-libp2p 0.8's built-in WebTransport (``libp2p.transport.webtransport``), both
directions: ping, identify, and a 1 MiB echo byte-exact.

Their stream drops data when its 64-slot queue fills (FACTS.md), so the handler on their side
reads everything promptly before answering (no write while reading).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.ping import PingService
from libp2p.identity.identify.identify import ID as IDENTIFY
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.wt_helpers import LISTEN_V4, read_to_end, wt_addrs, wt_host

pytestmark = pytest.mark.interop

STORE_ECHO = TProtocol("/test/store-echo/1.0.0")


async def store_echo_handler(stream: INetStream) -> None:
    """Read until EOF (keeping up with the sender), then send it all back and close."""
    data = await read_to_end(stream)
    await stream.write(data)
    await stream.close()


@asynccontextmanager
async def their_host(listen: bool) -> AsyncIterator[IHost]:
    from libp2p.transport.webtransport import WebTransportTransport as TheirTransport

    kp = create_new_key_pair()
    addrs = [Multiaddr(LISTEN_V4)] if listen else []
    host = new_host(key_pair=kp, transports=[TheirTransport(kp.private_key)], listen_addrs=addrs)
    host.set_stream_handler(STORE_ECHO, store_echo_handler)
    async with host.run(listen_addrs=addrs):
        yield host


async def _exercise(client: IHost, server: IHost, addrs: list[Multiaddr]) -> None:
    await client.connect(PeerInfo(server.get_id(), addrs))
    rtts = await PingService(client).ping(server.get_id(), ping_amt=3)
    assert len(rtts) == 3

    stream = await client.new_stream(server.get_id(), [IDENTIFY])
    identify = parse_identify_response(await read_to_end(stream))
    assert identify.public_key == server.get_public_key().serialize()

    payload = os.urandom(1 << 20)
    stream = await client.new_stream(server.get_id(), [STORE_ECHO])
    await stream.write(payload)
    await stream.close_write()  # type: ignore[attr-defined]
    assert await read_to_end(stream) == payload


async def test_their_client_dials_our_listener(engine: str) -> None:
    with trio.fail_after(90):
        async with wt_host(engine) as ours, their_host(listen=False) as theirs:
            ours.set_stream_handler(STORE_ECHO, store_echo_handler)
            await _exercise(theirs, ours, wt_addrs(ours))


async def test_our_client_dials_their_listener(engine: str) -> None:
    with trio.fail_after(90):
        async with their_host(listen=True) as theirs, wt_host(engine, listen=()) as ours:
            addrs = [a for a in theirs.get_transport_addrs() if "webtransport" in str(a)]
            assert addrs and "certhash" in str(addrs[0])
            await _exercise(ours, theirs, addrs)
