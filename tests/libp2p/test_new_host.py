"""``py_libp2p_webtransport.new_host``: one call to a host with TCP and WebTransport, the identify
fix, and the current certhashes on every WebTransport address it reports (``host.py``)."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
import trio
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.tcp.tcp import TCP
from multiaddr import Multiaddr
from support.wt_helpers import LISTEN_TCP, LISTEN_V4, packaged_host, read_to_end

import py_libp2p_webtransport
from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.apps.identify import IDENTIFY_PROTOCOL
from py_libp2p_webtransport.host import new_host, webtransport_of


def wt_only(addrs: Sequence[Multiaddr]) -> list[Multiaddr]:
    return [a for a in addrs if "/webtransport" in str(a)]


def certhashes(addr: Multiaddr) -> tuple[bytes, ...]:
    return wt_multiaddr.parse_webtransport_multiaddr(addr).certhashes


LISTEN_QUIC = "/ip4/127.0.0.1/udp/0/quic-v1"


async def test_one_call_gives_tcp_and_webtransport_both_dialable(engine: str) -> None:
    with trio.fail_after(60):
        async with (
            packaged_host(engine, listen=(LISTEN_V4, LISTEN_QUIC, LISTEN_TCP)) as server,
            packaged_host(engine) as client,
        ):
            manager = server.get_network().transport_manager  # type: ignore[attr-defined]
            kinds = {type(t).__name__ for t in manager.get_transports()}
            assert kinds == {"WebTransportTransport", "QuicTransport", "TCP"}
            pair = webtransport_of(server).cert_manager.advertised_certhashes()
            advertised = server.get_addrs()
            (wt,) = wt_only(advertised)
            assert list(certhashes(wt)) == pair and str(wt).endswith(f"/p2p/{server.get_id()}")
            tcp = [a for a in advertised if "/tcp/" in str(a)]
            assert len(tcp) == 1
            quic = [a for a in advertised if "/quic-v1/p2p/" in str(a)]
            assert len(quic) == 1
            # WebTransport and QUIC share the UDP port.
            assert quic[0].value_for_protocol("udp") == wt.value_for_protocol("udp")
            # Each address really carries a connection: one over each transport.
            for addr in (wt, quic[0], tcp[0]):
                await client.connect(PeerInfo(server.get_id(), [addr]))
                stream = await client.new_stream(server.get_id(), ["/echo/1.0.0"])  # type: ignore[list-item]
                await stream.write(b"via " + str(addr).encode())
                await stream.close()
                assert await read_to_end(stream) == b"via " + str(addr).encode()
                for conn in list(client.get_network().get_connections(server.get_id())):
                    await conn.close()


async def test_identify_fix_is_installed(engine: str) -> None:
    """The observed address of a WebTransport peer is its UDP WebTransport address, not /tcp/."""
    with trio.fail_after(60):
        async with (
            packaged_host(engine) as server,
            packaged_host(engine, listen=(LISTEN_V4,)) as client,
        ):
            (wt,) = wt_only(server.get_addrs())
            await client.connect(PeerInfo(server.get_id(), [wt]))
            stream = await client.new_stream(server.get_id(), [IDENTIFY_PROTOCOL])
            identify = parse_identify_response(await read_to_end(stream))
            # The client listens on UDP: its dial left from that socket (one port per host).
            assert socket.AF_INET not in webtransport_of(client)._client_endpoints
            (endpoint,) = webtransport_of(client).endpoints()
            port = endpoint.local_address[1]
            assert str(Multiaddr(identify.observed_addr)) == (
                f"/ip4/127.0.0.1/udp/{port}/quic-v1/webtransport"
            )
            listen = [Multiaddr(a) for a in identify.listen_addrs]
            assert [list(certhashes(a)) for a in wt_only(listen)] == [
                webtransport_of(server).cert_manager.advertised_certhashes()
            ]


async def test_announced_dns_address_gets_the_certhashes(engine: str) -> None:
    announce = [
        Multiaddr("/dns4/node.example.com/udp/443/quic-v1/webtransport"),
        Multiaddr("/ip4/198.51.100.7/tcp/4001"),
    ]
    with trio.fail_after(30):
        async with packaged_host(engine, announce=announce) as server:
            pair = webtransport_of(server).cert_manager.advertised_certhashes()
            peer = server.get_id()
            hashes = "".join(f"/certhash/{wt_multiaddr.multihash_to_text(h)}" for h in pair)
            assert [str(a) for a in server.get_addrs()] == [
                f"/dns4/node.example.com/udp/443/quic-v1/webtransport{hashes}/p2p/{peer}",
                f"/ip4/198.51.100.7/tcp/4001/p2p/{peer}",
            ]


def test_options_that_would_undo_the_wiring_are_refused() -> None:
    with pytest.raises(TypeError, match="transports"):
        new_host(transports=[TCP()])
    with pytest.raises(TypeError, match="announce_addrs"):
        new_host(announce_addrs=[Multiaddr("/ip4/198.51.100.7/tcp/1")])
    # Without our QUIC transport no transport of this host listens on plain QUIC.
    with pytest.raises(ValueError, match="quic-v1"):
        new_host(listen_addrs=[Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1")], quic=False)


def test_package_root_exports_new_host() -> None:
    from py_libp2p_webtransport import host

    assert py_libp2p_webtransport.new_host is host.new_host


def test_default_listen_addresses_follow_the_transports() -> None:
    # Without listen_addrs the defaults are checked too: those of transports the host lacks
    # (TCP with tcp=False, QUIC with quic=False) are left out instead of refused.
    for options in ({}, {"tcp": False}, {"tcp": False, "quic": False}, {"quic": False}):
        new_host(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tcp"):
        new_host(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")], tcp=False)
