"""Bounds on the server side, through the transport API (no swarm): the accept queue refuses
streams explicitly, and a client that never does Noise is dropped after the handshake timeout."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedStreamReset
from multiaddr import Multiaddr
from support.wt_helpers import client_endpoint

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.engine.base import EngineConfig
from py_libp2p_webtransport.handshake import open_session
from py_libp2p_webtransport.multiaddr import parse_webtransport_multiaddr
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")


async def _listening(engine: str, handler: Any, **config: Any) -> tuple[Any, Any]:
    kp = create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine, **config))
    listener = transport.create_listener(handler)
    await listener.listen(LISTEN)
    return transport, listener


async def test_full_accept_queue_resets_streams(engine: str) -> None:
    """Streams beyond ``accept_queue_size`` that nobody accepts are reset, never dropped."""
    accepted: list[WebTransportConnection] = []
    got_conn = trio.Event()

    async def handler(conn: Any) -> None:  # takes the connection, never accepts a stream
        accepted.append(conn)
        got_conn.set()
        await trio.sleep_forever()

    with trio.fail_after(30):
        server, listener = await _listening(engine, handler, accept_queue_size=2)
        client = WebTransportTransport(
            create_new_key_pair().private_key, WebTransportConfig(engine=engine)
        )
        try:
            conn = await client.dial(listener.get_addrs()[0])
            await got_conn.wait()
            streams = [conn.open_stream_nowait() for _ in range(5)]
            for s in streams[:2]:  # the queue holds the first two
                await s.write(b"hello")
            refused = 0
            for s in streams[2:]:
                with pytest.raises(MuxedStreamReset):
                    await s.write(b"hello")  # may already see the reset
                    await s.read(10)
                refused += 1
            assert refused == 3
            assert len(accepted) == 1
        finally:
            await client.close()
            await server.close()


async def test_server_drops_client_that_never_authenticates(engine: str) -> None:
    """A session without a Noise handshake is closed by the server at ``handshake_timeout``."""

    async def handler(conn: Any) -> None:
        raise AssertionError("an unauthenticated connection must not reach the handler")

    with trio.fail_after(30):
        server, listener = await _listening(engine, handler, handshake_timeout=1.0)
        try:
            (addr,) = listener.get_addrs()
            # The first half of a dial, up to the session; then no Noise stream at all.
            async with client_endpoint(engine) as endpoint_for:
                conn, stream = await open_session(
                    endpoint_for,
                    parse_webtransport_multiaddr(addr),
                    config=WebTransportConfig(engine=engine),
                    engine_config=EngineConfig(is_client=True),
                    local_peer=ID.from_pubkey(create_new_key_pair().public_key),
                    early_stream=False,
                )
                assert stream is None
                assert conn.session_rejected is None and not conn.is_closed
                await conn.closed_event.wait()  # the server gives up after its handshake timeout
                assert conn.is_closed
        finally:
            await server.close()
