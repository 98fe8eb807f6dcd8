"""``dial_session`` and ``accept_session`` on their own: real loopback endpoints on both engines,
no transport, no listener, no swarm. Each failure has its type on the dialer and its outcome on
the server (``None``: the client left before asking for a session)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from multiaddr import Multiaddr
from support.wt_helpers import client_endpoint

from py_libp2p_webtransport import handshake
from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.certs import CertManager
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection, transport_multiaddr
from py_libp2p_webtransport.endpoint import Endpoint, EndpointConnection, EndpointOptions
from py_libp2p_webtransport.engine.base import EngineConfig
from py_libp2p_webtransport.errors import (
    CerthashMismatch,
    DialTimeout,
    HandshakeError,
    InvalidCertificate,
    MissingCerthash,
    PeerIdMismatch,
    SessionRejected,
)
from py_libp2p_webtransport.handshake import AuthenticatedSession, accept_session, dial_session

CLIENT_ENGINE_CONFIG = EngineConfig(is_client=True)
GUARD = 30  # stops a hang only; every dial here fails or succeeds on its own bounds


class Server:
    """A bare accept loop: a server endpoint whose connections go through ``accept_session``
    (or, with ``noise=False``, get their session accepted and nothing more)."""

    def __init__(self, engine: str, nursery: trio.Nursery, *, noise: bool, timeout: float) -> None:
        self.key = create_new_key_pair()
        self.peer_id = ID.from_pubkey(self.key.public_key)
        self.certs = CertManager(self.key.private_key)
        self.config = WebTransportConfig(engine=engine, handshake_timeout=timeout)
        self.nursery = nursery
        self.noise = noise
        self.connections: list[WebTransportConnection] = []
        self._send, self.outcomes = trio.open_memory_channel[Any](math.inf)

    def on_connection(self, endpoint_conn: EndpointConnection) -> None:
        conn = WebTransportConnection(
            endpoint_conn, is_initiator=False, config=self.config, local_peer=self.peer_id
        )
        self.connections.append(conn)
        if self.noise:
            self.nursery.start_soon(self._accept, conn)

    async def _accept(self, conn: WebTransportConnection) -> None:
        outcome: Any
        try:
            outcome = await accept_session(
                conn,
                private_key=self.key.private_key,
                certhashes=self.certs.noise_certhashes(),
                timeout=self.config.handshake_timeout,
                linger_nursery=self.nursery,
            )
        except Exception as error:
            outcome = error
        self._send.send_nowait(outcome)


@asynccontextmanager
async def serving(
    engine: str, *, noise: bool = True, timeout: float = 10.0
) -> AsyncIterator[tuple[Server, Multiaddr]]:
    """A running ``Server`` and its address (with its certhashes, without /p2p)."""
    async with trio.open_nursery() as nursery:
        server = Server(engine, nursery, noise=noise, timeout=timeout)
        certificate, key = server.certs.current()
        endpoint = await Endpoint.bind(
            "127.0.0.1",
            0,
            EndpointOptions(
                engine=engine,
                server_config=EngineConfig(
                    is_client=False, certificate_der=certificate, private_key_der=key
                ),
            ),
            on_connection=server.on_connection,
        )
        nursery.start_soon(endpoint.run)
        addr = wt_multiaddr.with_certhashes(
            transport_multiaddr(endpoint.local_address), server.certs.advertised_certhashes()
        )
        try:
            yield server, addr
        finally:
            endpoint.close()
            nursery.cancel_scope.cancel()  # lingering handshake streams


async def dial(
    engine: str, maddr: Multiaddr | str, **config: Any
) -> tuple[AuthenticatedSession, Any]:
    """``dial_session`` from a fresh key and endpoint; returns the session and the client key."""
    key = create_new_key_pair()
    async with client_endpoint(engine) as endpoint_for:
        session = await dial_session(
            endpoint_for,
            wt_multiaddr.parse_webtransport_multiaddr(maddr),
            private_key=key.private_key,
            config=WebTransportConfig(engine=engine, **config),
            engine_config=CLIENT_ENGINE_CONFIG,
        )
        await session.conn.close()
    return session, key


def with_hashes(addr: Multiaddr, hashes: list[bytes]) -> Multiaddr:
    return wt_multiaddr.with_certhashes(wt_multiaddr.without_certhashes(addr), hashes)


async def test_both_sides_authenticate_and_the_connection_carries_streams(engine: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr), client_endpoint(engine) as endpoint_for:
            key = create_new_key_pair()
            session = await dial_session(
                endpoint_for,
                wt_multiaddr.parse_webtransport_multiaddr(f"{addr}/p2p/{server.peer_id}"),
                private_key=key.private_key,
                config=WebTransportConfig(engine=engine),
                engine_config=CLIENT_ENGINE_CONFIG,
            )
            accepted = await server.outcomes.receive()
            assert isinstance(accepted, AuthenticatedSession)
            assert (session.peer_id, session.public_key) == (server.peer_id, server.key.public_key)
            assert accepted.peer_id == ID.from_pubkey(key.public_key)
            assert accepted.public_key == key.public_key
            assert session.conn.is_established and session.conn.peer_id == server.peer_id
            assert accepted.conn.is_established and accepted.conn.peer_id == accepted.peer_id

            stream = await session.conn.open_stream()
            await stream.write(b"after the handshake")
            await stream.close()
            served = await accepted.conn.accept_stream()
            assert await served.read(100) == b"after the handshake"
            await session.conn.close()
            await accepted.conn.closed_event.wait()


async def test_wrong_tls_certhash(engine: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr):
            wrong = with_hashes(addr, [wt_multiaddr.certhash_multihash(b"not the certificate")])
            with pytest.raises(CerthashMismatch):
                await dial(engine, wrong)
            # Refused right after the QUIC handshake: the server never saw a CONNECT.
            assert await server.outcomes.receive() is None


async def test_dialed_certhash_missing_from_the_noise_list(engine: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr):
            hashes = wt_multiaddr.parse_webtransport_multiaddr(addr).certhashes
            extra = with_hashes(addr, [*hashes, wt_multiaddr.certhash_multihash(b"never served")])
            with pytest.raises(CerthashMismatch):
                await dial(engine, extra)
            assert isinstance(await server.outcomes.receive(), HandshakeError)


async def test_wrong_peer_id(engine: str) -> None:
    other = ID.from_pubkey(create_new_key_pair().public_key)
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr):
            with pytest.raises(PeerIdMismatch):
                await dial(engine, f"{addr}/p2p/{other}")
            assert isinstance(await server.outcomes.receive(), HandshakeError)


async def test_certificate_not_valid_at_the_dialers_clock(engine: str) -> None:
    month_later = time.time() + 30 * 86400
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr):
            with pytest.raises(InvalidCertificate):
                await dial(engine, addr, clock=lambda: month_later)
            assert await server.outcomes.receive() is None


async def test_rejected_session(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session layer answers a CONNECT to another path with 404; the early Noise stream
    dies with the session and the dialer reports the rejection, not a Noise failure."""
    monkeypatch.setattr(handshake, "NOISE_PATH", "/not-the-libp2p-path")
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr):
            with pytest.raises(SessionRejected) as info:
                await dial(engine, addr)
            assert info.value.status == 404
            assert await server.outcomes.receive() is None


async def test_missing_certhash_fails_before_any_packet(engine: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(engine) as (server, addr):
            with pytest.raises(MissingCerthash):
                await dial(engine, wt_multiaddr.without_certhashes(addr))
            assert server.connections == []


async def test_silent_address_times_out_the_quic_handshake(engine: str) -> None:
    silent = trio.socket.socket(type=trio.socket.SOCK_DGRAM)  # bound, never read
    await silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    addr = Multiaddr(f"/ip4/127.0.0.1/udp/{port}/quic-v1/webtransport")
    hashes = [wt_multiaddr.certhash_multihash(b"anything")]
    with silent, trio.fail_after(GUARD):
        with pytest.raises(DialTimeout):
            await dial(engine, wt_multiaddr.with_certhashes(addr, hashes), connect_timeout=0.5)


async def test_server_that_never_does_noise_times_out_the_dialer(engine: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(engine, noise=False) as (server, addr):
            with pytest.raises(DialTimeout):
                await dial(engine, addr, handshake_timeout=0.5)
            (conn,) = server.connections
            await conn.closed_event.wait()  # the dialer closed the connection


async def test_client_that_never_does_noise_times_out_the_server(engine: str) -> None:
    with trio.fail_after(GUARD):
        async with serving(engine, timeout=0.5) as (server, addr):
            async with client_endpoint(engine) as endpoint_for:
                conn, stream = await handshake.open_session(
                    endpoint_for,
                    wt_multiaddr.parse_webtransport_multiaddr(addr),
                    config=WebTransportConfig(engine=engine),
                    engine_config=CLIENT_ENGINE_CONFIG,
                    local_peer=ID.from_pubkey(create_new_key_pair().public_key),
                    early_stream=False,
                )
                assert stream is None and conn.session_ready.is_set() and not conn.is_closed
                assert isinstance(await server.outcomes.receive(), HandshakeError)
                await conn.closed_event.wait()  # the server closed the connection
