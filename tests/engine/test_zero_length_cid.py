"""A Chromium-like client (zero-length source CID, 8-byte original DCID) against the qh3 server.

An aioquic client with ``connection_id_length=0`` behaves like Chromium on the wire once its
original DCID is made 8 bytes long (Chromium's; aioquic would otherwise use an empty one, which
RFC 9000 §7.2 forbids). The tests prove the workaround in ``engine/qh3/zero_length_cid.py``
works, and that each of its two halves is necessary.
"""

from __future__ import annotations

import copy
import os
import random

import pytest
import qh3
from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    EngineConfig,
    HandshakeCompleted,
    QuicEngine,
    StreamDataReceived,
    create_engine,
)
from py_libp2p_webtransport.engine.qh3 import zero_length_cid
from py_libp2p_webtransport.engine.qh3.connection import Qh3Connection
from py_libp2p_webtransport.errors import EngineError


def chromium_like_client(dcid_length: int = 8):  # type: ignore[no-untyped-def]
    def make(config: EngineConfig) -> QuicEngine:
        engine = create_engine("aioquic", config)
        quic = engine._quic  # type: ignore[attr-defined]
        # A copy: configurations are shared by every engine made from the same EngineConfig.
        quic._configuration = copy.copy(quic._configuration)
        quic._configuration.connection_id_length = 0
        quic._host_cids[0].cid = quic.host_cid = b""
        quic._local_initial_source_connection_id = b""
        quic._peer_cid.cid = os.urandom(dcid_length)
        quic._original_destination_connection_id = quic._peer_cid.cid
        # Like Chromium, and as RFC 9000 §5.1.1 requires of a zero-length-CID endpoint: never
        # issue NEW_CONNECTION_ID (aioquic would send empty ones).
        quic._replenish_connection_ids = lambda: None
        return engine

    return make


def pair_with(cert: ServerCertificate, dcid_length: int = 8) -> EnginePair:
    return EnginePair("aioquic", "qh3", cert, client_factory=chromium_like_client(dcid_length))


def handshook(pair: EnginePair) -> bool:
    return (
        pair.server is not None
        and bool(pair.client.of_type(HandshakeCompleted))
        and bool(pair.srv.of_type(HandshakeCompleted))
    )


def test_client_really_uses_a_zero_length_source_cid(cert: ServerCertificate) -> None:
    pair = pair_with(cert)
    first = pair.client.engine.datagrams_to_send(pair.now)[0][0]
    dcid_len = first[5]
    assert dcid_len == 8 and first[6 + dcid_len] == 0  # SCID length byte


def test_zero_length_cid_client_completes_handshake_and_streams(
    cert: ServerCertificate,
) -> None:
    pair = pair_with(cert)
    pair.handshake()
    odcid = pair.client.engine.original_destination_connection_id
    assert pair.srv.engine.host_connection_ids[0] == odcid  # routed by the client's DCID
    up = random.Random(1).randbytes(1024 * 1024)
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, up, end_stream=True)
    pair.run(lambda: any(e.end_stream for e in pair.srv.of_type(StreamDataReceived)))
    assert pair.srv.stream_bytes(sid) == up
    pair.srv.engine.send_stream_data(sid, up[::-1], end_stream=True)
    pair.run(lambda: any(e.end_stream for e in pair.client.of_type(StreamDataReceived)))
    assert pair.client.stream_bytes(sid) == up[::-1]
    assert pair.client.engine.peer_certificate_der() == cert.certificate_der


def test_without_the_workaround_qh3_rejects_the_transport_parameters(
    cert: ServerCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zero_length_cid, "prepare_server", lambda conn, data: None)
    pair = pair_with(cert)
    pair.run(
        lambda: (
            bool(pair.client.of_type(ConnectionTerminated))
            and bool(pair.srv.of_type(ConnectionTerminated))
        ),
        max_steps=2000,
    )
    assert not handshook(pair)
    [server_end] = pair.srv.of_type(ConnectionTerminated)
    assert "initial_source_connection_id does not match" in server_end.reason
    # Even the server's CONNECTION_CLOSE goes to the wrong CID: the client only times out.
    [client_end] = pair.client.of_type(ConnectionTerminated)
    assert client_end.remote is False


def test_recording_the_empty_scid_alone_is_not_enough(
    cert: ServerCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only half 1: the facade learns the empty SCID, but the core keeps its stock CIDs and so
    # keeps addressing the client's original DCID.
    monkeypatch.setattr(zero_length_cid, "prepare_server", lambda conn, data: None)
    monkeypatch.setattr(
        Qh3Connection, "_learn_remote_source_cid", zero_length_cid.learn_empty_source_cid
    )
    pair = EnginePair(
        "aioquic",
        "qh3",
        cert,
        client_factory=chromium_like_client(),
        client_config=EngineConfig(is_client=True, idle_timeout=3.0),
        server_config=EngineConfig(is_client=False, idle_timeout=3.0),
    )
    pair.run(
        lambda: (
            bool(pair.client.of_type(ConnectionTerminated))
            and pair.server is not None
            and bool(pair.srv.of_type(ConnectionTerminated))
        ),
        max_steps=5000,
    )
    # No server packet reaches the client, so neither side completes the handshake.
    for side in (pair.client, pair.srv):
        assert not side.of_type(HandshakeCompleted)
        [terminated] = side.of_type(ConnectionTerminated)
        assert terminated.reason == "Idle timeout"


def test_untested_qh3_version_refuses_instead_of_guessing(
    cert: ServerCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qh3, "__version__", "9.9.9")
    pair = pair_with(cert)
    with pytest.raises(EngineError, match="9.9.9 cannot serve zero-length-CID clients"):
        pair.step()


def test_odcid_of_unexpected_length_is_refused(cert: ServerCertificate) -> None:
    pair = pair_with(cert, dcid_length=12)
    with pytest.raises(EngineError, match="12-byte DCID"):
        pair.step()


def test_normal_clients_do_not_get_the_workaround(cert: ServerCertificate) -> None:
    pair = EnginePair("aioquic", "qh3", cert)
    pair.handshake()
    assert pair.srv.engine._quic.wt_zero_length_peer_cid is False  # type: ignore[attr-defined]
    assert (
        pair.srv.engine.host_connection_ids[0] != pair.srv.engine.original_destination_connection_id
    )


def test_initial_keys_match_rfc9001_appendix_a() -> None:
    # RFC 9001 A.1: DCID 0x8394c8f03e515708, client key/iv/hp and server key.
    dcid = bytes.fromhex("8394c8f03e515708")
    _, key, iv, hp = zero_length_cid.initial_keys(dcid, 1, is_client_side=True)
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2"
    _, key, iv, hp = zero_length_cid.initial_keys(dcid, 1, is_client_side=False)
    assert key.hex() == "cf3a5331653c364c88f0f379b6067e37"
    assert iv.hex() == "0ac1493ca1905853b0bba03e"
    assert hp.hex() == "c206b8d9b9f0f37644430b490eeaa314"
