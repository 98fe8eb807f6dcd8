"""A connection that closes is forgotten at once, on both transports (WebTransport and QUIC):
the listener and the transport no longer reference it (its engine and buffers can go), the task
running the handler for it ends, and a py-libp2p host gets its inbound slot back."""

from __future__ import annotations

import gc
import socket
import weakref
from typing import Any

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.config import ConnectionConfig
from multiaddr import Multiaddr

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.quic_transport import QuicTransport
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN = {
    "webtransport": "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
    "quic": "/ip4/127.0.0.1/udp/0/quic-v1",
}


def make_transport(kind: str, engine: str, key: Any = None) -> Any:
    key = key or create_new_key_pair().private_key
    cls = WebTransportTransport if kind == "webtransport" else QuicTransport
    return cls(key, WebTransportConfig(engine=engine))


async def wait_until_drained(*endpoints: Any) -> None:
    """Until the endpoints forgot their QUIC connections (closing ones drain for a few PTOs);
    the endpoint's record holds the connection object until then."""
    while any(endpoint.connections for endpoint in endpoints):
        await trio.sleep(0.02)


@pytest.mark.parametrize("kind", ["webtransport", "quic"])
@pytest.mark.parametrize("closer", ["client", "server"])
async def test_closed_connection_is_no_longer_referenced(
    engine: str, kind: str, closer: str
) -> None:
    served: list[weakref.ref[Any]] = []
    arrived = trio.Event()
    handler_ended = trio.Event()

    async def handler(conn: Any) -> None:  # as py-libp2p's: never returns by itself
        served.append(weakref.ref(conn))
        arrived.set()
        try:
            await trio.sleep_forever()
        finally:
            handler_ended.set()

    server = make_transport(kind, engine)
    client = make_transport(kind, engine)
    listener = server.create_listener(handler)
    with trio.fail_after(30):
        await listener.listen(Multiaddr(LISTEN[kind]))
        try:
            conn = await client.dial(listener.get_addrs()[0])
            await arrived.wait()
            peer = served[0]()
            assert peer is not None
            assert listener.connections == [peer] and client.connections() == [conn]
            await (conn if closer == "client" else peer).close()
            await peer.closed_event.wait()
            await conn.closed_event.wait()
            await handler_ended.wait()  # the handler's task ends with its connection
            assert listener.connections == [] and client.connections() == []
            assert len(listener._connections) == 0 and len(client._connections) == 0
            client_conn = weakref.ref(conn)
            del conn, peer
            await wait_until_drained(listener.endpoint, client._client_endpoints[socket.AF_INET])
            gc.collect()
            assert served[0]() is None, gc.get_referrers(served[0]())
            assert client_conn() is None, gc.get_referrers(client_conn())
        finally:
            await client.close()
            await server.close()


@pytest.mark.parametrize("kind", ["webtransport", "quic"])
async def test_host_takes_more_connections_in_turn_than_its_inbound_slots(
    engine: str, kind: str
) -> None:
    """py-libp2p keeps ``max_connections - min_connections`` inbound slots, each held by the
    handler's task; a connection that closed must give its slot back, or the host refuses every
    connection after that many."""
    slots = 3
    kp = create_new_key_pair()
    server = make_transport(kind, engine, kp.private_key)
    limits = ConnectionConfig(
        max_connections=slots + 2, high_watermark=slots + 2, low_watermark=slots, min_connections=2
    )
    addrs = [Multiaddr(LISTEN[kind])]
    host = new_host(key_pair=kp, transports=[server], listen_addrs=addrs, connection_config=limits)
    swarm = host.get_network()
    async with host.run(listen_addrs=addrs):
        client = make_transport(kind, engine)
        try:
            with trio.fail_after(60):
                addr = server._listeners[0].get_addrs()[0]
                for _ in range(slots + 3):
                    conn = await client.dial(addr)
                    while not swarm.get_connections():  # the swarm took it (else closed it)
                        assert not conn.is_closed, "the host refused the connection"
                        await trio.sleep(0.01)
                    await conn.close()
                    while swarm.get_connections() or server.connections():
                        await trio.sleep(0.01)
                assert swarm._inbound_limiter.borrowed_tokens == 0
        finally:
            await client.close()
            await server.close()
