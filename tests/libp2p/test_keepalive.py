"""Keepalive (``WebTransportConfig.keepalive_interval``, on by default): an idle py<->py
connection outlives the QUIC idle timeout; without keepalive the same connection dies."""

from __future__ import annotations

import trio
from support.endpoint_helpers import wait_until
from support.wt_helpers import peer_info, read_to_end, wt_host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection

IDLE = 1.0  # seconds: short, so the test is; the keepalive becomes half of it


async def test_idle_connection_outlives_the_idle_timeout(engine: str) -> None:
    assert WebTransportConfig().keepalive_interval == 15.0  # on by default, as go
    with trio.fail_after(60):
        async with (
            wt_host(engine, idle_timeout=IDLE) as server,
            wt_host(engine, idle_timeout=IDLE) as client,
        ):
            await client.connect(peer_info(server))
            (conn,) = client.get_network().get_connections(server.get_id())
            muxed = conn.muxed_conn
            assert isinstance(muxed, WebTransportConnection)
            await trio.sleep(4 * IDLE)  # the idle period under test: nothing is sent by us
            assert not muxed.is_closed
            assert client.get_network().get_connections(server.get_id()) == [conn]
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            assert stream.muxed_conn is muxed  # the same connection carries it
            await stream.write(b"still here")
            await stream.close()
            assert await read_to_end(stream) == b"still here"


async def test_without_keepalive_an_idle_connection_dies(engine: str) -> None:
    """The control: the same setup with keepalive off loses the connection to the idle timeout
    (so the test above can fail)."""
    options = {"idle_timeout": IDLE, "keepalive_interval": None}
    with trio.fail_after(60):
        async with wt_host(engine, **options) as server, wt_host(engine, **options) as client:
            await client.connect(peer_info(server))
            (conn,) = client.get_network().get_connections(server.get_id())
            muxed = conn.muxed_conn
            assert isinstance(muxed, WebTransportConnection)
            await wait_until(lambda: muxed.is_closed, "the idle timeout", timeout=10 * IDLE)
