"""Stateless reset in the engines (``EngineConfig.stateless_reset_secret``), sans-IO: the server
advertises tokens derived from the secret, so a reset built from the same secret by another
process (``endpoint/stateless_reset.py``) ends the client's connection at once, on every engine
pair; a reset from another secret does not."""

from __future__ import annotations

import os

from support.enginepair import SERVER_ADDR, EnginePair, ServerCertificate

from py_libp2p_webtransport.endpoint.admission import HOST_CID_LENGTH
from py_libp2p_webtransport.endpoint.stateless_reset import StatelessResetter
from py_libp2p_webtransport.engine import ConnectionTerminated, EngineConfig, StreamDataReceived
from py_libp2p_webtransport.engine.base import ConnectionIdIssued
from py_libp2p_webtransport.engine.reset_token import (
    RESET_REASON,
    derive_reset_secret,
    reset_token,
)

SECRET = derive_reset_secret(b"host key bytes of the node under test")


def reset_pair(engine_pair: tuple[str, str], cert: ServerCertificate) -> EnginePair:
    pair = EnginePair(
        *engine_pair,
        cert,
        server_config=EngineConfig(is_client=False, stateless_reset_secret=SECRET),
    )
    pair.handshake()
    pair.quiesce()
    return pair


def client_short_header(pair: EnginePair) -> bytes:
    """What the client sends next on the connection (a short header to the server's id)."""
    pair.client.engine.send_stream_data(0, b"are you there?", False)
    (datagram, _), *_ = pair.client.engine.datagrams_to_send(pair.now)
    assert not datagram[0] & 0x80
    return bytes(datagram)


def feed_client(pair: EnginePair, datagram: bytes) -> list[ConnectionTerminated]:
    pair.client.engine.receive_datagrams([datagram], SERVER_ADDR, pair.now)
    pair._drain(pair.client)
    return [e for e in pair.client.of_type(ConnectionTerminated)]  # type: ignore[misc]


def test_a_reset_from_the_same_secret_ends_the_connection_at_once(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = reset_pair(engine_pair, cert)
    trigger = client_short_header(pair)
    # A restarted node: nothing but the secret (a new resetter object, no connection state).
    reset = StatelessResetter(SECRET).respond(trigger, pair.now)
    assert reset is not None
    (terminated,) = feed_client(pair, reset)
    assert terminated.reason == RESET_REASON and terminated.remote
    assert pair.client.engine.datagrams_to_send(pair.now) == []  # nothing more is sent


def test_a_reset_from_another_secret_is_ignored(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = reset_pair(engine_pair, cert)
    trigger = client_short_header(pair)
    other = StatelessResetter(derive_reset_secret(b"some other host key")).respond(trigger, 1.0)
    assert other is not None
    assert feed_client(pair, other) == []
    # The connection still works: the server gets the data the client sent.
    pair.server.engine.receive_datagrams([trigger], ("127.0.0.1", 40001), pair.now)  # type: ignore[union-attr]
    pair.run(lambda: pair.srv.stream_bytes(0) == b"are you there?")
    assert not pair.client.of_type(ConnectionTerminated)
    assert pair.srv.of_type(StreamDataReceived)


def test_without_a_secret_the_tokens_are_not_derived(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = EnginePair(*engine_pair, cert)  # stateless_reset_secret=None: random tokens
    pair.handshake()
    pair.quiesce()
    reset = StatelessResetter(SECRET).respond(client_short_header(pair), pair.now)
    assert reset is not None
    assert feed_client(pair, reset) == []


def test_every_connection_id_the_server_issues_has_a_derived_token_on_aioquic(
    engine: str, cert: ServerCertificate
) -> None:
    """aioquic issues more ids in NEW_CONNECTION_ID frames, each with its derived token (what an
    aioquic client learnt), so a reset works for whichever id the client moved to."""
    pair = reset_pair((engine, "aioquic"), cert)
    issued = [e.connection_id for e in pair.srv.of_type(ConnectionIdIssued)]  # type: ignore[attr-defined]
    assert issued
    for cid in issued:
        assert len(cid) == HOST_CID_LENGTH
        trigger = bytes([0x40]) + cid + os.urandom(40)
        reset = StatelessResetter(SECRET).respond(trigger, pair.now)
        assert reset is not None and reset.endswith(reset_token(SECRET, cid))
    if engine == "aioquic":
        quic = pair.client.engine._quic  # type: ignore[attr-defined]
        known = [quic._peer_cid, *quic._peer_cid_available]
        assert len(known) == 1 + len(issued)
        for cid in known:
            assert cid.stateless_reset_token == reset_token(SECRET, cid.cid)


def test_qh3_draws_its_own_tokens_for_the_ids_it_issues_later(cert: ServerCertificate) -> None:
    """The qh3 limitation, kept visible: its core issues more ids whose tokens are its own
    random ones (the first id's token is ours). When this fails, qh3 lets us set them."""
    pair = reset_pair(("aioquic", "qh3"), cert)
    issued = [e.connection_id for e in pair.srv.of_type(ConnectionIdIssued)]  # type: ignore[attr-defined]
    assert issued
    quic = pair.client.engine._quic  # type: ignore[attr-defined]
    assert quic._peer_cid.stateless_reset_token == reset_token(SECRET, quic._peer_cid.cid)
    later = [cid for cid in quic._peer_cid_available if cid.cid in issued]
    assert later
    assert all(cid.stateless_reset_token != reset_token(SECRET, cid.cid) for cid in later)
