"""Our transport beside py-libp2p's TCP and QUIC in one host; IPv6."""

from __future__ import annotations

import os

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.quic.transport import QUICTransport
from libp2p.transport.tcp.tcp import TCP
from multiaddr import Multiaddr
from support.wt_helpers import LISTEN_V6, peer_info, read_short_reply, wt_addrs, wt_host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.conn import WebTransportConnection


def _has_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def _echo(client, peer_id, payload: bytes) -> bytes:  # type: ignore[no-untyped-def]
    stream = await client.new_stream(peer_id, [ECHO_PROTOCOL])
    await stream.write(payload)
    await stream.close_write()  # type: ignore[attr-defined]
    return await read_short_reply(stream)


async def test_beside_tcp_and_quic(engine: str) -> None:
    """QUIC's address check also matches /quic-v1/webtransport: we must still get those."""
    kp = create_new_key_pair()
    listen = (
        "/ip4/127.0.0.1/tcp/0",
        "/ip4/127.0.0.1/udp/0/quic-v1",
        "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
    )
    with trio.fail_after(60):
        async with wt_host(
            engine,
            key_pair=kp,
            listen=listen,
            extra_transports=[TCP(), QUICTransport(kp.private_key)],
        ) as server:
            addrs = server.get_transport_addrs()
            kinds = sorted(
                "wt" if "webtransport" in str(a) else "quic" if "quic" in str(a) else "tcp"
                for a in addrs
            )
            assert kinds == ["quic", "tcp", "wt"]
            assert all("certhash" in str(a) for a in addrs if "webtransport" in str(a))
            async with wt_host(engine) as client:
                await client.connect(peer_info(server))
                conns = client.get_network().get_connections(server.get_id())
                assert isinstance(conns[0].muxed_conn, WebTransportConnection)
                assert await _echo(client, server.get_id(), b"mixed") == b"mixed"
            # py-libp2p's own TCP client still reaches the same host over TCP.
            tcp_addr = next(a for a in addrs if "/tcp/" in str(a))
            tcp_client_kp = create_new_key_pair()
            from libp2p import new_host

            tcp_client = new_host(key_pair=tcp_client_kp)
            async with tcp_client.run(listen_addrs=[]):
                await tcp_client.connect(PeerInfo(server.get_id(), [tcp_addr]))
                assert await _echo(tcp_client, server.get_id(), b"tcp") == b"tcp"
            # And py-libp2p's QUIC client reaches it over plain QUIC.
            quic_addr = next(
                a for a in addrs if "/quic-v1" in str(a) and "webtransport" not in str(a)
            )
            quic_kp = create_new_key_pair()
            quic_client = new_host(
                key_pair=quic_kp, transports=[QUICTransport(quic_kp.private_key)]
            )
            async with quic_client.run(listen_addrs=[]):
                await quic_client.connect(PeerInfo(server.get_id(), [quic_addr]))
                assert await _echo(quic_client, server.get_id(), b"quic") == b"quic"


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6(engine: str) -> None:
    with trio.fail_after(30):
        async with wt_host(engine, listen=(LISTEN_V6,)) as server:
            async with wt_host(engine, listen=(LISTEN_V6,)) as client:
                (addr,) = wt_addrs(server)
                assert str(addr).startswith("/ip6/::1/udp/")
                await client.connect(peer_info(server))
                payload = os.urandom(100_000)
                assert await _echo(client, server.get_id(), payload) == payload
                conns = client.get_network().get_connections(server.get_id())
                assert conns[0].muxed_conn.get_remote_address()[0] == "::1"
                assert str(Multiaddr(str(conns[0].get_transport_addresses()[0]))).startswith(
                    "/ip6/::1/udp/"
                )


async def test_dial_dns4_localhost(engine: str) -> None:
    """``/dns4/localhost/...`` resolves before dialing (SNI is the name)."""
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            dns = Multiaddr(str(addr).replace("/ip4/127.0.0.1/", "/dns4/localhost/"))
            await client.connect(peer_info(server, [dns]))
            assert await _echo(client, server.get_id(), b"by name") == b"by name"
