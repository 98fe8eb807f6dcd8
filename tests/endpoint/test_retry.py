"""QUIC Retry on the trio endpoint: real sockets, real engines, crafted Initials from raw sockets.

A raw UDP socket plays a client that never completes a handshake: its Initials only have to
pass the endpoint's checks (version 1, >= 1200 bytes, 8-byte DCID), the engine then holds a
half-open connection until the handshake timeout reaps it.
"""

from __future__ import annotations

import logging
import os
import socket
from types import ModuleType

import pytest
import trio
from aioquic.quic.packet import get_retry_integrity_tag
from support.endpoint_helpers import Certificate, echo_once, endpoint_pair, wait_until

from py_libp2p_webtransport._wire import encode_varint
from py_libp2p_webtransport.endpoint import Endpoint
from py_libp2p_webtransport.endpoint.quic_header import LongPacketType, parse_header
from py_libp2p_webtransport.endpoint.retry import INTEGRITY_TAG_SIZE

HOSTS = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]


def crafted_initial(dcid: bytes, scid: bytes, token: bytes = b"") -> bytes:
    """A 1200-byte version 1 Initial with ``token`` and a payload of noise."""
    head = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([len(dcid)]) + dcid
    head += bytes([len(scid)]) + scid + encode_varint(len(token)) + token
    head += (0x4000 | 1100).to_bytes(2, "big")
    return head + os.urandom(max(1200 - len(head), 0) + 8)


async def _raw_socket(host: str) -> trio.socket.SocketType:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    await sock.bind((host, 0))
    return sock


async def _receive_retry(sock: trio.socket.SocketType) -> bytes:
    with trio.fail_after(5):
        data, _ = await sock.recvfrom(2048)
    return bytes(data)


@pytest.mark.parametrize("host", HOSTS)
async def test_dial_with_retry_always(host, engine, udp, certificate) -> None:  # type: ignore[no-untyped-def]
    """The client gets one Retry, comes back with its token and the connection echoes; the
    server engine knows the client's *original* DCID (its transport parameters carried it, or
    the client would have closed the connection)."""
    async with endpoint_pair(
        engine, udp, certificate, host=host, retry="always", timeout=30
    ) as pair:
        server = pair.server
        conn, handler = pair.dial()
        original_dcid = conn.engine.original_destination_connection_id
        await handler.handshake.wait()
        assert await echo_once(conn, handler, b"validated") == b"validated"
        # One Retry per datagram of the client's first flight (a post-quantum key share makes
        # qh3's ClientHello span two); the client takes the first and ignores the rest.
        assert 1 <= server.stats.retries_sent <= 2
        assert server.stats.connections_accepted == 1
        (server_conn,) = pair.handlers
        assert server_conn.engine.original_destination_connection_id == original_dcid
        assert server.stats.dropped_invalid_token == 0


async def test_retry_packet_is_well_formed(engine: str, certificate: Certificate) -> None:
    """The Retry goes to the client's SCID from a fresh id, its integrity tag checks out with
    aioquic's independent implementation, and no state was created for the Initial."""
    sock = await _raw_socket("127.0.0.1")
    async with endpoint_pair(engine, _udp_py(), certificate, retry="always", timeout=10) as pair:
        server = pair.server
        dcid, scid = os.urandom(8), os.urandom(5)
        await sock.sendto(crafted_initial(dcid, scid), server.local_address)
        retry = await _receive_retry(sock)
        header = parse_header(retry, 8)
        assert header.packet_type is LongPacketType.RETRY and header.version == 1
        assert header.destination_cid == scid
        assert len(header.source_cid) == 8 and header.source_cid != dcid
        body, tag = retry[:-INTEGRITY_TAG_SIZE], retry[-INTEGRITY_TAG_SIZE:]
        assert tag == get_retry_integrity_tag(body, dcid, version=1)
        assert tag != get_retry_integrity_tag(body, os.urandom(8), version=1)
        token = body[7 + len(header.destination_cid) + len(header.source_cid) :]
        assert len(token) > 16
        assert server.stats.retries_sent == 1
        assert server.connections == frozenset() and server.half_open == 0
        assert server.route_count == 0
    sock.close()


def _udp_py() -> ModuleType:
    from py_libp2p_webtransport import _udp_py

    return _udp_py


async def test_bad_tokens_are_dropped_counted_and_logged_once(
    engine: str, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    """Forged, expired, other-address and wrong-CID tokens create nothing; a good one does."""
    caplog.set_level(logging.INFO, logger="py_libp2p_webtransport.endpoint")
    sock = await _raw_socket("127.0.0.1")
    me = sock.getsockname()
    odcid, rscid = os.urandom(8), os.urandom(8)
    async with endpoint_pair(
        engine, _udp_py(), certificate, retry="always", handshake_timeout=2.0
    ) as pair:
        server = pair.server
        validator = server.address_validator
        assert validator is not None
        codec = validator.codec
        now = trio.current_time()
        bad = {
            "forged": os.urandom(60),
            "forged-tampered": bytearray(codec.encode(me, odcid, rscid, now)),
            "expired": codec.encode(me, odcid, rscid, now - codec.lifetime - 1.0),
            "address": codec.encode(("127.0.0.2", me[1]), odcid, rscid, now),
            "port": codec.encode((me[0], me[1] + 1), odcid, rscid, now),
            "connection_id": codec.encode(me, odcid, os.urandom(8), now),
        }
        bad["forged-tampered"][-1] ^= 1
        for _ in range(3):  # repeated: counted each time, logged once
            for token in bad.values():
                await sock.sendto(crafted_initial(rscid, b"", bytes(token)), server.local_address)
        total = 3 * len(bad)
        await wait_until(lambda: server.stats.datagrams_received == total, "bad tokens")
        assert server.stats.dropped_invalid_token == total
        assert validator.rejected == {
            "forged": 6,
            "expired": 3,
            "address": 6,
            "connection_id": 3,
        }
        assert server.stats.retries_sent == 0 and server.stats.connections_accepted == 0
        assert server.connections == frozenset() and server.route_count == 0
        records = [r for r in caplog.records if "token" in r.getMessage()]
        assert len(records) == 1, [r.getMessage() for r in records]
        # The same token, fresh and from the right address and to the right id: accepted.
        good = codec.encode(me, odcid, rscid, trio.current_time())
        await sock.sendto(crafted_initial(rscid, b"", good), server.local_address)
        await wait_until(lambda: server.stats.connections_accepted == 1, "the good token")
        (conn,) = server.connections
        assert conn.engine.original_destination_connection_id == odcid
        assert server.stats.dropped_invalid_token == total
    sock.close()


async def test_under_load_retries_above_the_half_open_threshold(
    engine: str, certificate: Certificate
) -> None:
    """Real half-open handshakes (noise Initials) up to the threshold are accepted directly;
    past it new clients get a Retry, and a real client still connects through it."""
    threshold = 4
    flooder = await _raw_socket("127.0.0.1")
    async with endpoint_pair(
        engine,
        _udp_py(),
        certificate,
        retry="under_load",
        retry_threshold=threshold,
        handshake_timeout=3.0,
        timeout=30,
    ) as pair:
        server, handlers = pair.server, pair.handlers
        for _ in range(threshold):
            await flooder.sendto(
                crafted_initial(os.urandom(8), os.urandom(8)), server.local_address
            )
        await wait_until(lambda: server.half_open == threshold, "half-open handshakes")
        assert server.stats.retries_sent == 0
        # Loaded: the next noise Initial gets a Retry, not a connection.
        await flooder.sendto(crafted_initial(os.urandom(8), os.urandom(8)), server.local_address)
        retry = await _receive_retry(flooder)
        assert parse_header(retry, 8).packet_type is LongPacketType.RETRY
        assert server.stats.retries_sent == 1 and server.half_open == threshold
        # A real client answers the Retry and is served.
        await pair.connect(addr=server.local_address)
        retries = server.stats.retries_sent
        assert 2 <= retries <= 3  # one per datagram of its first flight (qh3 sends two)
        assert server.stats.connections_accepted == threshold + 1
        await wait_until(lambda: server.half_open == threshold, "the server's side")
        assert sum(c.handshake_completed for c in handlers) == 1
        # When the half-open ones are reaped, new clients are accepted without a Retry.
        await wait_until(lambda: server.half_open == 0, "handshake timeouts", timeout=10)
        await pair.connect(addr=server.local_address)
        assert server.stats.retries_sent == retries
    flooder.close()


async def test_under_load_retries_a_source_over_its_rate(
    engine: str, certificate: Certificate
) -> None:
    """Initials beyond one source's rate get a Retry instead of being dropped; without Retry
    ("off") the same flood is dropped."""
    results = {}

    async def flood(server: Endpoint) -> float:
        """Send 20 Initials from one address; return how long until all were received."""
        flooder = await _raw_socket("127.0.0.1")
        started = trio.current_time()
        for _ in range(20):
            await flooder.sendto(
                crafted_initial(os.urandom(8), os.urandom(8)), server.local_address
            )
        await wait_until(lambda: server.stats.datagrams_received == 20, "the flood")
        flooder.close()
        return trio.current_time() - started

    for mode in ("under_load", "off"):
        async with endpoint_pair(
            engine,
            _udp_py(),
            certificate,
            retry=mode,
            initials_per_second=5.0,
            handshake_timeout=1.0,
            timeout=30,
        ) as pair:
            elapsed = await flood(pair.server)
            stats = pair.server.stats
            results[mode] = (stats.connections_accepted, stats.retries_sent)
            assert (
                stats.connections_accepted + stats.retries_sent + stats.dropped_rate_limited == 20
            )
            # The burst plus what refilled (5/s) while the flood went in.
            assert stats.connections_accepted <= 5 + 5 * elapsed
    accepted, retried = results["under_load"]
    assert retried == 20 - accepted and retried > 0
    assert results["off"][1] == 0


async def test_a_real_client_behind_a_flooded_address_gets_in_through_retry(
    engine: str, certificate: Certificate
) -> None:
    """Its address is over its Initial rate (a flood from the same host), so without Retry its
    Initial would be dropped; under load it gets a Retry, proves its address and is accepted at
    once (validated clients are not charged to the rate again)."""
    flooder = await _raw_socket("127.0.0.1")
    async with endpoint_pair(
        engine,
        _udp_py(),
        certificate,
        retry="under_load",
        initials_per_second=1.0,  # a burst of one, one more a second
        handshake_timeout=2.0,
        timeout=30,
    ) as pair:
        server = pair.server
        for _ in range(10):
            await flooder.sendto(
                crafted_initial(os.urandom(8), os.urandom(8)), server.local_address
            )
        await wait_until(lambda: server.stats.datagrams_received == 10, "the flood")
        flood_retries = server.stats.retries_sent
        assert flood_retries >= 9 and server.stats.connections_accepted <= 1
        accepted = server.stats.connections_accepted
        await pair.connect(addr=server.local_address)
        assert server.stats.retries_sent > flood_retries
        assert server.stats.connections_accepted == accepted + 1
        assert server.stats.dropped_rate_limited == 0
    flooder.close()
