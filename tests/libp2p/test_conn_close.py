"""Connection close: the session close capsule reaches the peer before the QUIC close, and
everything on the connection ends (streams see a reset, accept_stream gives up)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable, MuxedStreamReset
from multiaddr import Multiaddr

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")


async def test_close_sends_session_close_then_quic_close(engine: str) -> None:
    server_conns: list[WebTransportConnection] = []
    arrived = trio.Event()

    async def handler(conn: Any) -> None:
        server_conns.append(conn)
        arrived.set()
        await trio.sleep_forever()

    kp = create_new_key_pair()
    server = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine))
    listener = server.create_listener(handler)
    client = WebTransportTransport(
        create_new_key_pair().private_key, WebTransportConfig(engine=engine)
    )
    with trio.fail_after(30):
        await listener.listen(LISTEN)
        try:
            conn = await client.dial(listener.get_addrs()[0])
            await arrived.wait()
            (peer,) = server_conns
            assert peer.peer_id == client.local_peer and conn.peer_id == server.local_peer
            server_stream = None
            client_stream = conn.open_stream_nowait()
            await client_stream.write(b"x")
            server_stream = await peer.accept_stream()

            await conn.close()
            assert conn.is_closed
            await peer.closed_event.wait()
            # The capsule came first: the server saw a session close, not just a QUIC close.
            assert peer.close_reason is not None and "session closed by peer" in peer.close_reason
            with pytest.raises(MuxedStreamReset):
                await server_stream.read(10)
            with pytest.raises(MuxedConnUnavailable):
                await peer.accept_stream()
            with pytest.raises(MuxedConnUnavailable):
                await conn.open_stream()
        finally:
            await client.close()
            await server.close()
