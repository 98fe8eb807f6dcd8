"""Guards for every aioquic private name the adapter relies on (aioquic 1.7.2).

If an aioquic upgrade renames one of them, the test named after it fails here with a clear
message, rather than the adapter silently falling back to stock behaviour.
"""

from __future__ import annotations

import inspect

import pytest
from aioquic.quic.connection import Limit, QuicConnection
from aioquic.quic.recovery import QuicPacketPacer, QuicPacketRecovery
from aioquic.quic.stream import QuicStream, QuicStreamReceiver, QuicStreamSender
from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import EngineConfig, create_engine


def test_window_writers_exist_with_expected_signature() -> None:
    for name, params in (
        ("_write_stream_limits", ["self", "builder", "space", "stream"]),
        ("_write_connection_limits", ["self", "builder", "space"]),
        ("_handle_reset_stream_frame", ["self", "context", "frame_type", "buf"]),
    ):
        method = getattr(QuicConnection, name)
        assert list(inspect.signature(method).parameters) == params, name


def test_limits_and_stream_receiver_fields() -> None:
    limit = Limit(frame_type=0x10, name="max_data", value=10)
    assert (limit.value, limit.sent, limit.used) == (10, 10, 0)
    receiver = QuicStreamReceiver(stream_id=0, readable=True)
    assert receiver.highest_offset == 0 and receiver.starting_offset() == 0
    assert receiver.is_finished is False
    sender = QuicStreamSender(stream_id=0, writable=True)
    sender.write(b"abc")
    assert sender._buffer_stop - sender._buffer_start == 3
    stream = QuicStream(stream_id=0, max_stream_data_local=5)
    assert stream.max_stream_data_local_sent == 5
    stream.wt_consumed = 1  # the adapter stores per-stream consumption on the stream


def test_recovery_has_pacer_loss_hook_and_rtt() -> None:
    params = inspect.signature(QuicPacketRecovery._on_packets_lost).parameters
    assert {"packets", "now", "space"} <= set(params)
    assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("packets", "space"))
    for name in ("next_send_time", "update_after_send", "update_rate"):
        assert callable(getattr(QuicPacketPacer, name))


def test_connection_private_fields(cert: ServerCertificate) -> None:
    engine = create_engine(
        "aioquic",
        EngineConfig(
            is_client=False,
            certificate_der=cert.certificate_der,
            private_key_der=cert.private_key_der,
            max_streams_bidi=7,
            max_streams_uni=9,
        ),
        original_destination_connection_id=b"8bytes!!",
    )
    quic = engine._quic  # type: ignore[attr-defined]
    assert isinstance(quic._local_max_data, Limit)
    assert (quic._local_max_streams_bidi.value, quic._local_max_streams_uni.value) == (7, 9)
    assert quic._close_event is None and quic._streams == {}
    assert isinstance(quic._loss._pacer, QuicPacketPacer)
    assert quic._loss._rtt_smoothed == 0.0


def bursts(pacing: bool, cert: ServerCertificate) -> int:
    """Datagrams one ``datagrams_to_send`` call releases once the RTT is known."""
    pair = EnginePair(
        "aioquic",
        "aioquic",
        cert,
        client_config=EngineConfig(is_client=True, pacing=pacing),
    )
    pair.handshake()
    sid = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(sid, b"x" * 1024 * 1024)
    return len(pair.client.engine.datagrams_to_send(pair.now))


def test_pacing_off_releases_the_whole_congestion_window(cert: ServerCertificate) -> None:
    paced, unpaced = bursts(True, cert), bursts(False, cert)
    assert unpaced >= 10  # aioquic's initial window is 10 datagrams
    assert paced < unpaced


@pytest.mark.parametrize("pacing", [True, False])
def test_pacer_choice_is_installed(pacing: bool, cert: ServerCertificate) -> None:
    engine = create_engine("aioquic", EngineConfig(is_client=True, pacing=pacing))
    pacer = engine._quic._loss._pacer  # type: ignore[attr-defined]
    assert (type(pacer) is QuicPacketPacer) is pacing
    assert pacer.next_send_time(1.0) is None  # nothing to pace before the first RTT sample


def test_server_can_request_a_client_certificate() -> None:
    # engine/aioquic.py sets this private flag from the ALPN callback (libp2p mutual TLS).
    import inspect

    from aioquic import tls

    assert "self._request_client_certificate = False" in inspect.getsource(tls.Context.__init__)
    source = inspect.getsource(tls.Context._server_handle_hello)
    assert source.index("alpn_cb(") < source.index("_request_client_certificate")
