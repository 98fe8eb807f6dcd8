"""Every dial failure is typed and bounded in time; bad listen addresses are refused."""

from __future__ import annotations

import socket

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.exceptions import SwarmException
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.wt_helpers import transport_of, wt_addrs, wt_host

from py_libp2p_webtransport import handshake
from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.errors import (
    CerthashMismatch,
    DialError,
    DialTimeout,
    ListenError,
    MissingCerthash,
    PeerIdMismatch,
    SessionRejected,
)
from py_libp2p_webtransport.listener import WebTransportListener
from py_libp2p_webtransport.transport import WebTransportTransport


def _certhash_of(der_like: bytes) -> bytes:
    """A well-formed sha2-256 multihash that no server certificate has."""
    return wt_multiaddr.certhash_multihash(der_like)


def _causes(error: BaseException) -> list[BaseException]:
    """The error, its causes, and the errors a py-libp2p MultiError carries, depth first."""
    out: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo:
        err = todo.pop()
        if err in out:
            continue
        out.append(err)
        if err.__cause__ is not None:
            todo.append(err.__cause__)
        for arg in getattr(err, "args", ()):
            if isinstance(arg, list):
                todo.extend(a for a in arg if isinstance(a, BaseException))
    return out


async def test_missing_certhash(engine: str) -> None:
    with trio.fail_after(20):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            bare = wt_multiaddr.without_certhashes(addr)
            with pytest.raises(MissingCerthash):
                await transport_of(client).dial(bare)


async def test_wrong_certhash(engine: str) -> None:
    with trio.fail_after(20):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            wrong = wt_multiaddr.with_certhashes(
                wt_multiaddr.without_certhashes(addr), [_certhash_of(b"not the cert")]
            )
            with pytest.raises(CerthashMismatch):
                await transport_of(client).dial(wrong)
            # Through the host the swarm wraps it, keeping ours as the cause.
            with pytest.raises(SwarmException) as info:
                await client.connect(PeerInfo(server.get_id(), [wrong]))
            assert any(isinstance(e, CerthashMismatch) for e in _causes(info.value))


async def test_extra_dialed_certhash_not_in_server_list(engine: str) -> None:
    """The TLS hash matches, but the client also dialed a hash the server never had: the Noise
    certhash check (dialed ⊆ server list) must refuse it."""
    with trio.fail_after(20):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            hashes = wt_multiaddr.parse_webtransport_multiaddr(addr).certhashes
            extended = wt_multiaddr.with_certhashes(
                wt_multiaddr.without_certhashes(addr),
                [*hashes, _certhash_of(b"a hash the server never had")],
            )
            with pytest.raises(CerthashMismatch):
                await transport_of(client).dial(extended)


async def test_wrong_peer_id(engine: str) -> None:
    with trio.fail_after(20):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            other = create_new_key_pair()
            from libp2p.peer.id import ID

            wrong = Multiaddr(f"{addr}/p2p/{ID.from_pubkey(other.public_key)}")
            with pytest.raises(PeerIdMismatch):
                await transport_of(client).dial(wrong)
            # The right one works on the same transport afterwards.
            conn = await transport_of(client).dial(Multiaddr(f"{addr}/p2p/{server.get_id()}"))
            assert conn.peer_id == server.get_id()
            await conn.close()


async def test_dead_port_fails_within_default_bound(engine: str) -> None:
    """Nothing listens: the dial fails with a typed error inside the default 5 s bound."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # now nothing listens on that port
    async with wt_host(engine) as server, wt_host(engine) as client:
        (addr,) = wt_addrs(server)
        hashes = wt_multiaddr.parse_webtransport_multiaddr(addr).certhashes
        dead = wt_multiaddr.with_certhashes(
            Multiaddr(f"/ip4/127.0.0.1/udp/{port}/quic-v1/webtransport"), hashes
        )
        assert WebTransportConfig().connect_timeout <= 5.0
        # The guard only stops a hang; the dial itself must fail on its own bound.
        with trio.fail_after(WebTransportConfig().connect_timeout + 3):
            with pytest.raises((DialTimeout, DialError)):
                await transport_of(client).dial(dead)


async def test_listen_on_address_with_certhash_is_refused(engine: str) -> None:
    kp = create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine))

    async def handler(conn: object) -> None:
        raise AssertionError("no connection expected")

    listener = transport.create_listener(handler)
    assert isinstance(listener, WebTransportListener)
    hashed = wt_multiaddr.with_certhashes(
        Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport"), [_certhash_of(b"x")]
    )
    with pytest.raises(ListenError):
        await listener.listen(hashed)
    await transport.close()


async def test_private_network_is_refused(engine: str) -> None:
    """A swarm with a PSK would wrap our muxed connection: refuse to dial and to listen."""
    kp = create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine))
    host = new_host(key_pair=kp, transports=[transport], psk="0" * 64)
    transport.set_swarm(host.get_network())  # what the swarm does when it starts
    with pytest.raises(DialError, match="private network"):
        await transport.dial(
            wt_multiaddr.with_certhashes(
                Multiaddr("/ip4/127.0.0.1/udp/9/quic-v1/webtransport"), [_certhash_of(b"x")]
            )
        )

    async def handler(conn: object) -> None:
        raise AssertionError("no connection expected")

    with pytest.raises(ListenError, match="private network"):
        await transport.create_listener(handler).listen(
            Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
        )
    await transport.close()


async def test_non_2xx_is_session_rejected(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server answering the CONNECT with 404 (wrong path) gives SessionRejected."""
    with trio.fail_after(20):
        async with wt_host(engine) as server, wt_host(engine) as client:
            (addr,) = wt_addrs(server)
            monkeypatch.setattr(handshake, "NOISE_PATH", "/not-the-libp2p-path")
            with pytest.raises(SessionRejected) as info:
                await transport_of(client).dial(addr)
            assert info.value.status == 404


def test_wildcard_listen_addresses_are_concrete() -> None:
    """A wildcard bind is advertised as dialable interface addresses (no socket needed here)."""
    from py_libp2p_webtransport.listener import _concrete_addresses

    v4 = _concrete_addresses(("0.0.0.0", 4433))
    assert ("127.0.0.1", 4433) in v4
    assert all(host != "0.0.0.0" and ":" not in host for host, _ in v4)
    assert _concrete_addresses(("127.0.0.1", 4433)) == [("127.0.0.1", 4433)]
    v6 = _concrete_addresses(("::", 4433))
    assert all(host != "::" and ":" in host for host, _ in v6) or v6 == [("::", 4433)]
