"""``QuicTransport`` (``/quic-v1``) between real py-libp2p hosts on loopback, on each engine: echo,
ping, concurrent streams, and one UDP port for ``/quic-v1`` and ``/quic-v1/webtransport``."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.host.ping import PingService
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.quic_helpers import QUIC_V4, WT_V4, quic_host, quic_of
from support.wt_helpers import read_to_end

from py_libp2p_webtransport import shared_endpoint
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.endpoint import Endpoint, EndpointOptions
from py_libp2p_webtransport.engine.base import EngineConfig
from py_libp2p_webtransport.errors import DialError, PeerIdMismatch
from py_libp2p_webtransport.quic_conn import BAD_CERTIFICATE, QuicConnection

# The host helper lives in tests/support (the metrics tests use it too); ``host`` here.
host = quic_host


def addrs_of(h: IHost, webtransport: bool = False) -> list[Multiaddr]:
    return [a for a in h.get_transport_addrs() if ("webtransport" in str(a)) == webtransport]


async def echo(client: IHost, server: IHost, payload: bytes) -> bytes:
    stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            await stream.write(payload)
            await stream.close()

        nursery.start_soon(send)
        received = await read_to_end(stream)
    return received


async def test_echo_ping_and_concurrent_streams(engine: str) -> None:
    with trio.fail_after(30):
        async with host(engine) as server, host(engine) as client:
            (addr,) = addrs_of(server)
            assert str(addr).endswith("/quic-v1")
            await client.connect(PeerInfo(server.get_id(), [addr]))
            conn = client.get_network().get_connections(server.get_id())[0]
            muxed = getattr(conn, "muxed_conn", conn)
            assert isinstance(muxed, QuicConnection)
            assert muxed.peer_id == server.get_id()
            payload = os.urandom(3 * 1024 * 1024 + 17)
            assert await echo(client, server, payload) == payload
            rtts = await PingService(client).ping(server.get_id(), ping_amt=3)
            assert len(rtts) == 3
            results: dict[int, bytes] = {}

            async def one(i: int) -> None:
                results[i] = await echo(client, server, bytes([i]) * (1000 + i))

            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(one, i)
            assert results == {i: bytes([i]) * (1000 + i) for i in range(50)}
            # The server authenticated the client by its certificate.
            (server_conn,) = quic_of(server).connections()
            assert server_conn.peer_id == client.get_id()


async def test_one_port_serves_webtransport_and_quic(engine: str) -> None:
    with trio.fail_after(30):
        async with host(engine, (QUIC_V4, WT_V4), webtransport=True) as server:
            (quic_addr,) = addrs_of(server)
            (wt_addr,) = addrs_of(server, webtransport=True)
            port = quic_addr.value_for_protocol("udp")
            assert wt_addr.value_for_protocol("udp") == port
            endpoints = {id(ep) for ep in quic_of(server).endpoints()}
            assert len(endpoints) == 1
            async with (
                host(engine, (), webtransport=True) as wt_client,
                host(engine, ()) as quic_client,
            ):
                await wt_client.connect(PeerInfo(server.get_id(), [wt_addr]))
                await quic_client.connect(PeerInfo(server.get_id(), [quic_addr]))
                for client in (wt_client, quic_client):
                    assert await echo(client, server, b"x" * 100_000) == b"x" * 100_000
                server_conns = [
                    getattr(c, "muxed_conn", c)
                    for conns in server.get_network().get_connections_map().values()
                    for c in conns
                ]
                kinds = sorted(type(c).__name__ for c in server_conns)
                assert kinds == ["QuicConnection", "WebTransportConnection"]
                for conn in server_conns:
                    # Made once the ALPN is known, a server connection's handshake still starts
                    # at the endpoint's first packet (it read ~0 for QUIC before).
                    assert conn._ep_conn.started_at is not None
                    assert conn._started_at == conn._ep_conn.started_at
                    assert conn.handshake_phases()["quic"] > 0


async def test_dials_leave_from_the_listening_socket(engine: str) -> None:
    with trio.fail_after(30):
        async with host(engine) as server, host(engine) as client:
            await client.connect(PeerInfo(server.get_id(), addrs_of(server)))
            (client_addr,) = addrs_of(client)
            (server_conn,) = quic_of(server).connections()
            assert server_conn.get_remote_address() == (
                "127.0.0.1",
                int(client_addr.value_for_protocol("udp")),
            )
            assert quic_of(client)._client_endpoints == {}


async def test_wrong_peer_id_is_refused(engine: str) -> None:
    with trio.fail_after(30):
        async with host(engine) as server, host(engine, ()) as client:
            (addr,) = addrs_of(server)
            other = create_new_key_pair().public_key
            from libp2p.peer.id import ID

            target = Multiaddr(f"{addr}/p2p/{ID.from_pubkey(other)}")
            with pytest.raises(PeerIdMismatch):
                await quic_of(client).dial(target)


async def test_draft29_address_gets_a_clear_error(engine: str) -> None:
    with trio.fail_after(10):
        async with host(engine, ()) as client:
            transport = quic_of(client)
            assert transport.can_dial(Multiaddr("/ip4/127.0.0.1/udp/4001/quic"))
            with pytest.raises(DialError, match="draft-29"):
                await transport.dial(Multiaddr("/ip4/127.0.0.1/udp/4001/quic"))
            assert not transport.can_dial(Multiaddr(WT_V4))


async def test_client_certificate_without_the_extension_is_refused(engine: str) -> None:
    """A client whose certificate proves no libp2p peer gets bad_certificate; nothing reaches
    the swarm."""
    from support.enginepair import make_certificate as plain_certificate

    with trio.fail_after(20):
        async with host(engine) as server:
            (addr,) = addrs_of(server)
            target = ("127.0.0.1", int(addr.value_for_protocol("udp")))
            cert = plain_certificate()
            config = EngineConfig(
                is_client=True,
                alpn_protocols=("libp2p",),
                certificate_der=cert.certificate_der,
                private_key_der=cert.private_key_der,
            )
            closed = trio.Event()
            codes: list[int] = []

            class Watch:
                def handle_engine_events(self, conn: Any, events: list[Any], now: float) -> None:
                    for event in events:
                        if type(event).__name__ == "ConnectionTerminated":
                            codes.append(event.error_code)
                            closed.set()

                def get_timer(self) -> None:
                    return None

                def handle_timer(self, now: float) -> None:
                    pass

            endpoint = await Endpoint.bind("127.0.0.1", 0, EndpointOptions(engine=engine))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(endpoint.run)
                conn = endpoint.connect(target, config, engine=engine)
                conn.handler = Watch()
                await closed.wait()
                endpoint.close()
            assert codes == [BAD_CERTIFICATE]
            assert quic_of(server).connections() == []


async def test_client_offering_no_alpn_we_serve_is_refused_and_counted(engine: str) -> None:
    with trio.fail_after(20):
        async with host(engine, (QUIC_V4, WT_V4), webtransport=True) as server:
            (addr,) = addrs_of(server)
            target = ("127.0.0.1", int(addr.value_for_protocol("udp")))
            (shared,) = [
                s for s in shared_endpoint.shared_endpoints() if s.key[0] == str(server.get_id())
            ]
            assert shared.endpoint.stats.alpn_refused == 0
            endpoint = await Endpoint.bind("127.0.0.1", 0, EndpointOptions(engine=engine))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(endpoint.run)
                conn = endpoint.connect(
                    target, EngineConfig(is_client=True, alpn_protocols=("smtp",)), engine=engine
                )
                await conn.closed_event.wait()
                endpoint.close()
            # The server counts once its own side of the connection has ended (wait for it).
            while shared.endpoint.stats.alpn_refused == 0:
                await trio.sleep(0.01)
            assert shared.endpoint.stats.alpn_refused == 1
