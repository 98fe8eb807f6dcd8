"""Interop with py-libp2p 0.8.1's own QUIC transport (``libp2p.transport.quic``), both
directions: their dialer to our listener, our dialer to their listener. Real hosts on loopback.

Ping, identify (the observed address is the dialer's ``/quic-v1`` address), echoes byte-exact,
concurrent streams. Where py-libp2p's own QUIC defects stop a check, the check is a strict
expected failure naming the defect.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p import new_host as libp2p_new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.host.ping import PingService
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.quic.transport import QUICTransport
from multiaddr import Multiaddr
from support.wt_helpers import read_short_reply, read_to_end

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL, register_handlers
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.host import new_host
from py_libp2p_webtransport.quic_conn import QuicConnection

pytestmark = pytest.mark.interop

QUIC_V4 = "/ip4/127.0.0.1/udp/0/quic-v1"


@asynccontextmanager
async def our_host(engine: str, listen: bool = True) -> AsyncIterator[IHost]:
    addrs = [Multiaddr(QUIC_V4)] if listen else []
    h = new_host(listen_addrs=addrs, tcp=False, config=WebTransportConfig(engine=engine))
    register_handlers(h)
    async with h.run(listen_addrs=addrs):
        yield h


@asynccontextmanager
async def their_host(listen: bool = True) -> AsyncIterator[IHost]:
    kp = create_new_key_pair()
    addrs = [Multiaddr(QUIC_V4)] if listen else []
    h = libp2p_new_host(key_pair=kp, transports=[QUICTransport(kp.private_key)])
    register_handlers(h)
    async with h.run(listen_addrs=addrs):
        yield h


def quic_addrs(h: IHost) -> list[Multiaddr]:
    return [a for a in h.get_transport_addrs() if str(a).endswith("/quic-v1")]


async def echo(client: IHost, server: IHost, payload: bytes) -> bytes:
    """Write ``payload`` while reading its echo until as many bytes came back, then close.

    It never relies on the end of stream reaching py-libp2p's reader (see the defects below).
    """
    stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
    out = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, payload)
        while len(out) < len(payload):
            out += await stream.read(len(payload) - len(out))
    await stream.close()
    return bytes(out)


async def echo_to_eof(client: IHost, server: IHost, payload: bytes) -> bytes:
    """Write ``payload`` and the end of stream, read the echo up to the echo's end of stream."""
    stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            await stream.write(payload)
            await stream.close()

        nursery.start_soon(send)
        return await read_to_end(stream)


@asynccontextmanager
async def pair(engine: str, direction: str) -> AsyncIterator[tuple[IHost, IHost, IHost]]:
    """``(client, server, ours)`` connected over QUIC in ``direction``."""
    if direction == "theirs-to-ours":
        async with our_host(engine) as server, their_host(listen=False) as client:
            await client.connect(PeerInfo(server.get_id(), quic_addrs(server)))
            yield client, server, server
    else:
        async with their_host() as server, our_host(engine) as client:
            await client.connect(PeerInfo(server.get_id(), quic_addrs(server)))
            yield client, server, client


DIRECTIONS = ["theirs-to-ours", "ours-to-theirs"]


async def concurrent_echoes(client: IHost, server: IHost, n: int, how: Any) -> dict[int, Any]:
    """``n`` echoes at once; returns the ones that came back wrong (length or error)."""
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        payload = bytes([i]) * (2000 + i)
        try:
            got = await how(client, server, payload)
            if got != payload:
                results[i] = len(got)
        except Exception as error:
            results[i] = repr(error)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return results


def _our_conn(ours: IHost, other: IHost) -> QuicConnection:
    (conn,) = ours.get_network().get_connections(other.get_id())
    muxed: Any = getattr(conn, "muxed_conn", conn)
    assert isinstance(muxed, QuicConnection)
    return muxed


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_ping_identify_echo_and_concurrent_streams(engine: str, direction: str) -> None:
    with trio.fail_after(60):
        async with pair(engine, direction) as (client, server, ours):
            other = server if ours is client else client
            assert _our_conn(ours, other).peer_id == other.get_id()
            rtts = await PingService(client).ping(server.get_id(), ping_amt=3)
            assert len(rtts) == 3
            # They ask us: our answer names their UDP /quic-v1 address as observed.
            stream = await other.new_stream(ours.get_id(), [IDENTIFY_PROTOCOL])
            identify = parse_identify_response(await read_short_reply(stream))
            assert identify.public_key == ours.get_public_key().serialize()
            observed = str(Multiaddr(identify.observed_addr))
            port = _our_conn(ours, other).get_remote_address()[1]  # type: ignore[index]
            assert observed == f"/ip4/127.0.0.1/udp/{port}/quic-v1"
            payload = os.urandom(1024 * 1024 + 3)
            assert await echo(client, server, payload) == payload
            assert await concurrent_echoes(client, server, 50, echo) == {}


@pytest.mark.xfail(
    strict=True,
    reason="py-libp2p 0.8.1 defect: its identify reports a QUIC peer's observed address as "
    "/tcp/... (it builds it from the connection's IP and port as if it were TCP)",
)
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_their_identify_observes_our_quic_address(engine: str, direction: str) -> None:
    with trio.fail_after(30):
        async with pair(engine, direction) as (client, server, ours):
            other = server if ours is client else client
            stream = await ours.new_stream(other.get_id(), [IDENTIFY_PROTOCOL])
            identify = parse_identify_response(await read_to_end(stream))
            observed = str(Multiaddr(identify.observed_addr))
            assert observed.endswith("/quic-v1"), observed


async def test_large_echo_from_their_dialer(engine: str) -> None:
    with trio.fail_after(60):
        async with pair(engine, "theirs-to-ours") as (client, server, _):
            payload = os.urandom(8 * 1024 * 1024)
            assert await echo(client, server, payload) == payload


SINK_PROTOCOL = "/py-libp2p-webtransport/test/sink-after-fin/1.0.0"


@pytest.mark.xfail(
    strict=True,
    reason="py-libp2p 0.8.1 defect: it drops incoming stream data once 2 MiB are unread, after "
    "QUIC accepted it (an 8 MiB echo loses bytes whenever its reader falls 2 MiB behind)",
)
async def test_their_listener_keeps_unread_data(engine: str) -> None:
    """4 MiB sent to a handler of theirs that reads only once the FIN arrived, so every byte is
    unread at once: a correct stream buffers or flow-controls them; theirs drops beyond 2 MiB.
    (An 8 MiB echo showed the defect only when their echo fell behind: an expected failure
    must not depend on timing.)"""
    with trio.fail_after(30):
        async with pair(engine, "ours-to-theirs") as (client, server, _):
            received: list[int] = []
            done = trio.Event()

            async def sink(stream: Any) -> None:
                received.append(len(await read_short_reply(stream)))
                done.set()

            server.set_stream_handler(SINK_PROTOCOL, sink)  # type: ignore[arg-type]
            stream = await client.new_stream(server.get_id(), [SINK_PROTOCOL])  # type: ignore[list-item]
            payload = os.urandom(4 * 1024 * 1024)
            await stream.write(payload)
            await stream.close()
            await done.wait()
            assert received == [len(payload)]


@pytest.mark.xfail(
    strict=True,
    reason="py-libp2p 0.8.1 defect: its QUIC reader reports the stream closed once the peer's "
    "FIN arrived, before its buffered data was read (the tail is lost; two py-libp2p QUIC "
    "hosts show the same)",
)
async def test_echo_to_the_end_of_stream_from_their_dialer(engine: str) -> None:
    with trio.fail_after(30):
        async with pair(engine, "theirs-to-ours") as (client, server, _):
            payload = os.urandom(1024 * 1024)
            assert await echo_to_eof(client, server, payload) == payload


@pytest.mark.xfail(
    strict=True,
    reason="py-libp2p 0.8.1 defect: its QUIC dialer forgets a stream once its own FIN is sent "
    "('Unexpected outbound stream N in data event'), so concurrent echoes read to the end of "
    "stream come back empty (two py-libp2p QUIC hosts show the same). Towards their listener "
    "the end of a stream is reported as a reset in only a share of them: not checked, as a "
    "strict expected failure cannot be a share",
)
async def test_concurrent_echoes_to_the_end_of_stream_from_their_dialer(engine: str) -> None:
    with trio.fail_after(60):
        async with pair(engine, "theirs-to-ours") as (client, server, _):
            assert await concurrent_echoes(client, server, 100, echo_to_eof) == {}
