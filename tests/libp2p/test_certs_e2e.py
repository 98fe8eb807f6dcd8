"""Certificates end to end: rotation without restart (fake clock) and restarts with the same key."""

from __future__ import annotations

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from multiaddr import Multiaddr
from support.wt_helpers import FakeClock, peer_info, transport_of, wt_addrs, wt_host

from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL


async def test_rotation_keeps_previous_next_dialable(engine: str) -> None:
    clock = FakeClock()
    with trio.fail_after(60):
        async with wt_host(engine, clock=clock) as server, wt_host(engine, clock=clock) as client:
            (before,) = wt_addrs(server)
            old_current, old_next = wt_multiaddr.parse_webtransport_multiaddr(before).certhashes
            manager = transport_of(server).cert_manager
            clock.now = manager.next_rotation + 1  # in the overlap of old-next and its successor
            (after,) = wt_addrs(server)  # the listener rotates when asked for its addresses
            new_hashes = wt_multiaddr.parse_webtransport_multiaddr(after).certhashes
            assert new_hashes[0] == old_next and old_current not in new_hashes

            # A client still holding the pre-rotation address (current + next) gets in: the
            # server now serves the former "next" certificate and still lists the old one.
            conn = await transport_of(client).dial(Multiaddr(f"{before}/p2p/{server.get_id()}"))
            assert conn.peer_id == server.get_id()
            await conn.close()
            # And the fresh address works through the host.
            await client.connect(peer_info(server, [after]))
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            await stream.write(b"after rotation")
            await stream.close()
            assert await stream.read(100) == b"after rotation"


async def test_restart_with_same_key_keeps_certhashes(engine: str) -> None:
    kp = create_new_key_pair()
    with trio.fail_after(60):
        async with wt_host(engine, key_pair=kp) as first:
            (addr1,) = wt_addrs(first)
            id1 = first.get_id()
        async with wt_host(engine, key_pair=kp) as second, wt_host(engine) as client:
            (addr2,) = wt_addrs(second)
            assert second.get_id() == id1
            hashes1 = wt_multiaddr.parse_webtransport_multiaddr(addr1).certhashes
            hashes2 = wt_multiaddr.parse_webtransport_multiaddr(addr2).certhashes
            assert hashes1 == hashes2
            # The certhashes a browser saved before the restart still pin the new process.
            port2 = addr2.value_for_protocol("udp")
            saved = wt_multiaddr.with_certhashes(
                Multiaddr(f"/ip4/127.0.0.1/udp/{port2}/quic-v1/webtransport"), hashes1
            )
            await client.connect(peer_info(second, [saved]))
            assert client.get_network().get_connections(second.get_id())


async def test_listen_addresses_are_built_once_per_certificate_pair(engine: str) -> None:
    """py-libp2p asks for the listen addresses several times per connection: they are reused
    until a rotation changes the certhashes, then rebuilt."""
    clock = FakeClock()
    with trio.fail_after(60):
        async with wt_host(engine, clock=clock) as server:
            (listener,) = transport_of(server)._listeners
            first = listener.get_addrs()
            assert listener.get_addrs() is first  # no rebuild while nothing changed
            clock.now = transport_of(server).cert_manager.next_rotation + 1
            rotated = listener.get_addrs()
            assert rotated is not first and rotated != first
            assert listener.get_addrs() is rotated


async def test_rotation_switches_every_listener(engine: str) -> None:
    """Two listen addresses share the certificates: after a rotation noticed by either, both
    serve the new one (each is dialed with only its new address)."""
    clock = FakeClock()
    listen = tuple(f"/ip4/127.0.0.{i}/udp/0/quic-v1/webtransport" for i in (1, 2))
    with trio.fail_after(60):
        async with wt_host(engine, clock=clock, listen=listen) as server:
            before = wt_addrs(server)
            assert len(before) == 2
            clock.now = transport_of(server).cert_manager.next_rotation + 1
            after = wt_addrs(server)
            old_current = wt_multiaddr.parse_webtransport_multiaddr(before[0]).certhashes[0]
            for addr in after:
                assert old_current not in wt_multiaddr.parse_webtransport_multiaddr(addr).certhashes
                async with wt_host(engine, clock=clock) as client:
                    await client.connect(peer_info(server, [addr]))
                    assert client.get_network().get_connections(server.get_id())
