"""py-libp2p's own connection gater and resource manager, built as a user would and given to the
host, decide before the QUIC handshake (``gating.py``): a denied address or a connection over the
limits is dropped at its first Initial, counted by reason, and no TLS work is done for it."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import PeerInfo
from libp2p.rcmgr import ResourceLimits, new_resource_manager
from support.endpoint_helpers import wait_until
from support.wt_helpers import LISTEN_V4, packaged_host, peer_info, transport_of, wt_host

from py_libp2p_webtransport import metrics
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.errors import DialError
from py_libp2p_webtransport.gating import PreHandshakeAdmission, plain_ip

CONNECT_TIMEOUT = 20.0  # a refusal (CONNECTION_REFUSED) fails the dial long before


def server_stats(host: Any) -> Any:
    (endpoint,) = transport_of(host).endpoints()
    return endpoint.stats


async def dial(client: Any, server: Any) -> Any:
    """Our transport's dial (a typed error when refused), then the swarm takes it."""
    info = peer_info(server)
    conn = await transport_of(client).dial(info.addrs[0].encapsulate(f"/p2p/{info.peer_id}"))
    return conn


def rcmgr(**limits: Any) -> Any:
    """py-libp2p's resource manager with ``limits``; the extras that could refuse on their own
    (circuit breaker, graceful degradation) off, so the limits alone decide."""
    return new_resource_manager(
        limits=ResourceLimits(**limits),
        enable_circuit_breaker=False,
        enable_graceful_degradation=False,
    )


async def test_a_denied_address_is_dropped_before_the_handshake(engine: str) -> None:
    gated = ConnectionConfig(deny_list=["127.0.0.0/8"])
    with trio.fail_after(30):
        async with packaged_host(engine, listen=(LISTEN_V4,), connection_config=gated) as server:
            async with wt_host(engine, listen=(), connect_timeout=CONNECT_TIMEOUT) as client:
                with trio.fail_after(CONNECT_TIMEOUT / 2):  # refused, not timed out
                    with pytest.raises(DialError, match="connection refused: address denied"):
                        await dial(client, server)
            stats = server_stats(server)
            assert stats.dropped_gated >= 1 and stats.refusals_sent >= 1
            assert stats.connections_accepted == 0  # no server connection, no TLS
    assert "gated" in metrics._DROP_REASONS  # exported as packets_dropped{reason="gated"}


async def test_an_address_outside_the_deny_list_connects(engine: str) -> None:
    gated = ConnectionConfig(deny_list=["192.0.2.0/24"])
    with trio.fail_after(30):
        async with packaged_host(engine, listen=(LISTEN_V4,), connection_config=gated) as server:
            async with wt_host(engine, listen=()) as client:
                conn = await dial(client, server)
                assert not conn.is_closed
            assert server_stats(server).dropped_gated == 0


async def test_connections_over_the_resource_managers_limit_are_dropped(engine: str) -> None:
    manager = rcmgr(max_connections=1)
    with trio.fail_after(60):
        async with packaged_host(engine, listen=(LISTEN_V4,), resource_manager=manager) as server:
            async with wt_host(engine, listen=()) as first:
                await dial(first, server)
                # The swarm holds the one slot now (its own scope, with the peer id).
                await wait_until(lambda: len(transport_of(server).connections()) == 1, "first")
                async with wt_host(engine, listen=(), connect_timeout=CONNECT_TIMEOUT) as second:
                    with pytest.raises(DialError, match="connection refused: over resource limits"):
                        await dial(second, server)
                assert server_stats(server).dropped_over_limit >= 1
                assert server_stats(server).refusals_sent >= 1
                assert server_stats(server).connections_accepted == 1
            # The first one gone, its slot is free again (ours was released at the hand-over).
            await wait_until(lambda: manager.get_stats()["connections"] == 0, "slot released", 10)
            async with wt_host(engine, listen=()) as third:
                await dial(third, server)
            assert server_stats(server).connections_accepted == 2


async def test_receive_memory_is_reserved_for_the_connections_life(engine: str) -> None:
    window = 600 * 1024  # two do not fit in the manager's 1 MiB
    manager = rcmgr(max_memory_mb=1)
    config = WebTransportConfig(
        engine=engine, max_data=window, recv_budget=window, reserve_window_memory=True
    )
    with trio.fail_after(60):
        async with packaged_host(
            engine, listen=(LISTEN_V4,), resource_manager=manager, config=config
        ) as server:
            async with wt_host(engine, listen=()) as first:
                conn = await dial(first, server)
                await wait_until(lambda: manager.get_stats()["memory_bytes"] == window, "reserved")
                async with wt_host(engine, listen=(), connect_timeout=CONNECT_TIMEOUT) as second:
                    with pytest.raises(DialError):
                        await dial(second, server)
                assert server_stats(server).dropped_over_limit >= 1
                await conn.close()
            await wait_until(lambda: manager.get_stats()["memory_bytes"] == 0, "released", 10)
            async with wt_host(engine, listen=()) as third:
                await dial(third, server)


def test_the_gate_is_asked_through_its_per_ip_check() -> None:
    """The one private name of py-libp2p used (``ConnectionGate._check_ip_allowed``): when this
    fails, py-libp2p changed it and ``gating.py`` must follow."""
    from libp2p.network.connection_gate import ConnectionGate

    gate = ConnectionGate(deny_list=["203.0.113.0/24"])
    admission = PreHandshakeAdmission(lambda: gate, lambda: None)
    assert admission.verdict(("203.0.113.7", 4433)) == "dropped_gated"
    assert admission.verdict(("198.51.100.7", 4433)) is None


def test_mapped_and_scoped_addresses_are_gated_as_plain_ips() -> None:
    from libp2p.network.connection_gate import ConnectionGate

    assert plain_ip(("::ffff:203.0.113.7", 1, 0, 0)) == "203.0.113.7"
    assert plain_ip(("fe80::1%eth0", 1, 0, 2)) == "fe80::1"
    assert plain_ip(("2001:db8::1", 1, 0, 0)) == "2001:db8::1"
    gate = ConnectionGate(deny_list=["203.0.113.0/24"], allow_list=["fe80::/10", "2001:db8::/32"])
    admission = PreHandshakeAdmission(lambda: gate, lambda: None)
    assert admission.verdict(("::ffff:203.0.113.7", 4433, 0, 0)) == "dropped_gated"
    assert admission.verdict(("fe80::1%eth0", 4433, 0, 2)) is None


def test_a_reservation_never_claimed_is_released_at_the_next_verdict() -> None:
    manager = new_resource_manager(
        limits=ResourceLimits(max_connections=1),
        enable_circuit_breaker=False,
        enable_graceful_degradation=False,
    )
    admission = PreHandshakeAdmission(lambda: None, lambda: manager)
    assert admission.verdict(("198.51.100.1", 1)) is None
    assert manager.get_stats()["connections"] == 1
    # No connection claimed it (the endpoint failed to create one): the next client gets the slot.
    assert admission.verdict(("198.51.100.2", 1)) is None
    reservation = admission.claim(("198.51.100.2", 1))
    assert reservation is not None and admission.claim(("198.51.100.1", 1)) is None
    # A claimed one is the connection's until it is released.
    assert admission.verdict(("198.51.100.3", 1)) == "dropped_over_limit"
    reservation.release()
    reservation.release()  # idempotent
    assert manager.get_stats()["connections"] == 0
    assert admission.verdict(("198.51.100.3", 1)) is None


async def test_a_client_over_the_half_open_bound_is_refused_not_left_to_time_out(
    engine: str,
) -> None:
    """With ``max_pending_handshakes`` handshakes running, a new client gets CONNECTION_REFUSED
    with the reason at once (it used to be dropped and time out)."""
    from py_libp2p_webtransport.engine import create_engine

    with trio.fail_after(30):
        async with wt_host(engine, max_pending_handshakes=1, handshake_timeout=20.0) as server:
            addr = peer_info(server).addrs[0]
            port = int(addr.value_for_protocol("udp"))
            # A handshake that stalls: a real client that answers the server (its Retry) until
            # the server has a connection for it, then goes silent.
            server_addr = ("127.0.0.1", port)
            stalled = create_engine(
                engine, WebTransportConfig(engine=engine).engine_config(is_client=True)
            )
            stalled.connect(server_addr, trio.current_time())
            sock = trio.socket.socket(type=trio.socket.SOCK_DGRAM)
            await sock.bind(("127.0.0.1", 0))
            stats = server_stats(server)
            while stats.connections_accepted == 0:
                for datagram, _ in stalled.datagrams_to_send(trio.current_time()):
                    await sock.sendto(datagram, server_addr)
                with trio.move_on_after(0.05):
                    data, _ = await sock.recvfrom(65536)
                    stalled.receive_datagram(data, server_addr, trio.current_time())
            async with wt_host(engine, listen=(), connect_timeout=CONNECT_TIMEOUT) as client:
                with trio.fail_after(CONNECT_TIMEOUT / 2):  # refused, not timed out
                    with pytest.raises(DialError, match="too many handshakes in progress"):
                        await dial(client, server)
            assert stats.dropped_half_open >= 1 and stats.refusals_sent >= 1
            assert stats.connections_accepted == 1  # no state for the refused client
            sock.close()


@pytest.mark.parametrize("client_kind", ["webtransport", "quic"])
async def test_every_alpn_takes_its_reservation_whichever_listener_bound_the_socket(
    engine: str, client_kind: str
) -> None:
    """One socket, both ALPNs, one connection slot: a client of either kind takes the slot its
    admission reserved (released at the hand-over, where the swarm takes its own). The host
    listens on both addresses concurrently, so either listener may bind the socket; only the
    one that bound it claimed reservations, so the other's connections left theirs holding a
    second slot until the next Initial, and the swarm refused them."""
    manager = rcmgr(max_connections=1)
    listen = (LISTEN_V4, "/ip4/127.0.0.1/udp/0/quic-v1")
    with trio.fail_after(60):
        async with packaged_host(engine, listen=listen, resource_manager=manager) as server:
            (addr,) = [
                a
                for a in server.get_addrs()
                if ("/webtransport" in str(a)) == (client_kind == "webtransport")
            ]
            for _ in range(2):  # the slot comes back once the first client is gone
                async with packaged_host(engine, listen=()) as client:
                    await client.connect(PeerInfo(server.get_id(), [addr]))
                    await wait_until(lambda: len(server.get_connected_peers()) == 1, "accepted")
                    assert manager.get_stats()["connections"] == 1  # the swarm's, not ours too
                await wait_until(lambda: manager.get_stats()["connections"] == 0, "released", 10)
