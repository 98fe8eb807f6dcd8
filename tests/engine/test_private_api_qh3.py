"""Guards for every qh3 private name the adapter relies on (qh3 2.1.0).

Behavioural tests elsewhere fail if a shim stops working; these name the exact private API, so
an upgrade that renames something fails here with a message that says what moved.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from pathlib import Path

import pytest
import qh3
from qh3 import _hazmat
from qh3.quic.connection import QuicConnection
from qh3.quic.tls_bridge import QuicTlsBridge
from qh3.tls import ExtensionType
from support.enginepair import CLIENT_ADDR, SERVER_ADDR, EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import EngineConfig, create_engine
from py_libp2p_webtransport.engine.qh3 import zero_length_cid
from py_libp2p_webtransport.engine.qh3.adapter import _NEXT_STREAM_IDS
from py_libp2p_webtransport.errors import StreamLimitReached


def params(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_qh3_version_is_a_tested_one() -> None:
    # pyproject pins qh3 <2.2; a new patch release must be tested, then added here.
    assert qh3.__version__ in zero_length_cid.TESTED_QH3_VERSIONS


def test_facade_hooks_we_override_keep_their_signatures() -> None:
    assert params(QuicConnection._create_core) == ["self", "remote_addr", "initial_dcid", "now"]
    assert params(QuicConnection._create_tls) == ["self", "remote_source_cid"]
    assert params(QuicConnection._learn_remote_source_cid) == ["self", "data"]
    assert params(QuicConnection._drain_core) == ["self"]
    assert params(QuicConnection.receive_datagram) == ["self", "data", "addr", "now"]
    for helper in (
        "_call_core",
        "_require_core",
        "_normalize_address",
        "_log_datagram",
        "_log_packet",
        "_log_packet_dropped",
    ):
        assert callable(getattr(QuicConnection, helper)), helper


def test_facade_private_fields(cert: ServerCertificate) -> None:
    engine = create_engine(
        "qh3",
        EngineConfig(
            is_client=False,
            certificate_der=cert.certificate_der,
            private_key_der=cert.private_key_der,
        ),
        original_destination_connection_id=b"8bytes!!",
    )
    quic = engine._quic  # type: ignore[attr-defined]
    for name in (
        "_core",
        "_tls",
        "_configuration",
        "_is_client",
        "_version",
        "_retry_source_connection_id",
        "_handshake_complete",
        "_applied_transport_parameters",
        "_pre_handshake_state_replayed",
        "_close_event",
        "_remote_addr",
        "host_cid",
        "_quic_logger",
    ):
        assert hasattr(quic, name), name


def test_native_core_api(cert: ServerCertificate) -> None:
    for name in (
        "install_packet_key",
        "receive_datagram",
        "next_event",
        "has_events",
        "poll_transmit",
        "state",
        "stream_limits",
        "smoothed_rtt",
        "congestion_window",
        "bytes_in_flight",
        "loss_total",
        "get_send_buffer_size",
        "outstanding_application_packets",  # the FIN hold's rounds (engine/qh3/fin_hold.py)
    ):
        assert hasattr(_hazmat.QuicConnectionCore, name), name
    header = _hazmat.pull_quic_header  # (version, type, ?, dcid, scid, ..., packet_end at [9])
    pair = EnginePair("qh3", "qh3", cert)
    first = pair.client.engine.datagrams_to_send(pair.now)[0][0]
    parsed = header(first, 0, 8)
    assert parsed[1] == 0 and len(parsed[3]) == 8 and len(parsed[4]) == 8
    assert 0 < parsed[9] <= len(first)


def test_core_constructor_takes_our_arguments_and_stream_limits(
    cert: ServerCertificate,
) -> None:
    pair = EnginePair(
        "qh3",
        "qh3",
        cert,
        client_config=EngineConfig(is_client=True, max_streams_bidi=11, max_streams_uni=12),
        server_config=EngineConfig(is_client=False, max_streams_bidi=21, max_streams_uni=22),
    )
    pair.handshake()
    # stream_limits[:2] are the limits the peer advertised: ours travelled and were applied.
    assert pair.client.engine._quic._core.stream_limits[:2] == (21, 22)  # type: ignore[attr-defined]
    assert pair.srv.engine._quic._core.stream_limits[:2] == (11, 12)  # type: ignore[attr-defined]


def test_tls_bridge_serializes_transport_parameters_into_handshake_extensions() -> None:
    assert params(QuicTlsBridge.serialize_transport_parameters) == ["self"]
    engine = create_engine("qh3", EngineConfig(is_client=True, max_streams_bidi=5))
    engine.connect(("127.0.0.1", 4433), 0.0)
    extensions = dict(engine._quic._tls.tls.handshake_extensions)  # type: ignore[attr-defined]
    assert ExtensionType.QUIC_TRANSPORT_PARAMETERS in extensions


def test_ending_core_states_are_the_ones_we_drain_in(cert: ServerCertificate) -> None:
    from py_libp2p_webtransport.engine.qh3.connection import ENDING_STATES

    pair = EnginePair("qh3", "qh3", cert)
    pair.handshake()
    core = pair.client.engine._quic._core  # type: ignore[attr-defined]
    assert core.state == "connected"
    pair.client.engine.close(0, "")
    assert core.state in ENDING_STATES


def test_datagrams_to_send_polls_the_core_and_matches_the_facade(cert: ServerCertificate) -> None:
    # Without a qlog the adapter calls core.poll_transmit itself (the facade's loop only adds
    # logging): it must return what the facade would, (bytes, address) pairs, and count them.
    pair = EnginePair("qh3", "qh3", cert)
    pair.handshake()
    engine = pair.client.engine
    quic = engine._quic  # type: ignore[attr-defined]
    assert quic._quic_logger is None
    stream_id = engine.get_next_available_stream_id()
    engine.send_stream_data(stream_id, b"x" * 20_000, end_stream=True)
    before = engine.stats()
    out = engine.datagrams_to_send(pair.now)
    assert out, "20 kB queued must produce datagrams"
    assert all(type(data) is bytes and addr[:2] == SERVER_ADDR for data, addr in out)
    after = engine.stats()
    assert after.packets_sent - before.packets_sent == len(out)
    assert after.bytes_sent - before.bytes_sent == sum(len(d) for d, _ in out)
    assert quic.datagrams_to_send(pair.now) == []  # the core had nothing more for the facade
    pair.server.engine.receive_datagrams([d for d, _ in out], CLIENT_ADDR, pair.now)
    pair.run(until=lambda: len(pair.server.stream_bytes(stream_id)) == 20_000)


def test_datagrams_to_send_with_a_qlog_goes_through_the_facade(
    cert: ServerCertificate, tmp_path: Path
) -> None:
    # The fast path skips qh3's packet logging, so with a qlog the facade must do the polling.
    pair = EnginePair(
        "qh3", "qh3", cert, client_config=EngineConfig(is_client=True, qlog_dir=str(tmp_path))
    )
    pair.handshake()
    quic = pair.client.engine._quic  # type: ignore[attr-defined]
    assert quic._quic_logger is not None
    logged = []
    original = quic._log_packets
    quic._log_packets = lambda event, data: (logged.append(event), original(event, data))[1]
    stream_id = pair.client.engine.get_next_available_stream_id()
    pair.client.engine.send_stream_data(stream_id, b"y" * 5000)
    assert pair.client.engine.datagrams_to_send(pair.now)
    assert "packet_sent" in logged


# --- the stream-limit give-back of Qh3Engine.send_stream_data -------------------------------------


def _self_attributes_assigned(function: object) -> set[str]:
    """Names ``X`` of every ``self.X = ...`` / ``self.X.add(...)`` target in ``function``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    names: set[str] = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            targets = [node.func.value]  # self._set.add(...): a mutation of self._set
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                names.add(target.attr)
    return names


def test_stream_id_fields_are_the_ones_qh3_advances() -> None:
    """qh3 takes a local stream id in ``_record_local_stream`` before its core may refuse the
    stream; we restore exactly what it changed. A renamed or new field there fails this."""
    assert callable(QuicConnection._record_local_stream)
    assert params(QuicConnection._record_local_stream) == ["self", "stream_id"]
    changed = _self_attributes_assigned(QuicConnection._record_local_stream)
    # _pre_handshake_streams is only touched before the handshake, when no limit applies yet.
    assert changed - {"_pre_handshake_streams"} == {*_NEXT_STREAM_IDS, "_created_local_stream_ids"}
    quic = create_engine("qh3", EngineConfig(is_client=True))._quic  # type: ignore[attr-defined]
    for name in _NEXT_STREAM_IDS:
        assert isinstance(getattr(quic, name), int), name
    assert isinstance(quic._created_local_stream_ids, set)


def test_refused_stream_gives_its_id_back(cert: ServerCertificate) -> None:
    """The core's refusal must still say "stream limit" (we match on it) and the id we lost to
    ``_record_local_stream`` must come back, so the next attempt reuses it."""
    pair = EnginePair(
        "qh3",
        "qh3",
        cert,
        server_config=EngineConfig(is_client=False, max_streams_bidi=2),
    )
    pair.handshake()
    engine = pair.client.engine
    quic = engine._quic  # type: ignore[attr-defined]
    opened: list[int] = []
    with pytest.raises(StreamLimitReached):
        for _ in range(5):  # bounded: the third stream must be refused
            stream_id = engine.get_next_available_stream_id()
            engine.send_stream_data(stream_id, b"x")
            opened.append(stream_id)
    assert opened == [0, 4]
    refused = engine.get_next_available_stream_id()
    assert refused == 8  # given back: qh3 alone would have moved on to 12
    assert {getattr(quic, name) for name in _NEXT_STREAM_IDS[:2]} == {8}
    assert refused not in quic._created_local_stream_ids
    with pytest.raises(StreamLimitReached):  # and again, without burning another id
        engine.send_stream_data(refused, b"x")
    assert engine.get_next_available_stream_id() == 8


# --- the loss workarounds: send gate (engine/qh3/send_gate.py) and reservation guard ----------


def test_hooks_of_the_loss_workarounds_keep_their_signatures() -> None:
    # Qh3Connection overrides these to note the time and stash datagrams built while draining.
    assert params(QuicConnection.datagrams_to_send) == ["self", "now"]
    assert params(QuicConnection.handle_timer) == ["self", "now"]
    assert params(QuicConnection.receive_many_datagrams) == ["self", "datagrams", "addr", "now"]
    for name in ("get_send_buffer_size", "poll_transmit", "congestion_window", "bytes_in_flight"):
        assert hasattr(_hazmat.QuicConnectionCore, name), name


def test_core_send_buffer_size_counts_bytes_not_yet_sent_once(cert: ServerCertificate) -> None:
    # The gate's budget subtracts what the core already queued: that must be this number.
    pair = EnginePair("qh3", "qh3", cert)
    pair.handshake()
    engine = pair.client.engine
    quic = engine._quic  # type: ignore[attr-defined]
    stream_id = engine.get_next_available_stream_id()
    quic.send_stream_data(stream_id, b"q" * 100_000, False)  # past the gate, straight in
    assert quic._core.get_send_buffer_size(None) == 100_000
    assert quic._core.get_send_buffer_size(stream_id) == 100_000
    sent = engine.datagrams_to_send(pair.now)
    on_the_wire = sum(len(d) for d, _ in sent)
    left = quic._core.get_send_buffer_size(None)
    assert 0 < left < 100_000 and on_the_wire >= 100_000 - left
    # qh3 stops at its congestion window (what the gate budgets against).
    assert quic._core.bytes_in_flight <= quic._core.congestion_window


def test_poll_transmit_spends_pacing_credit_without_sending(cert: ServerCertificate) -> None:
    """Why the reservation guard polls only when the window was left full: every
    ``poll_transmit`` with an open window takes a datagram's worth of pacing credit even when
    it has nothing to send, so extra polls make a pacing timer out of nothing."""
    pair = EnginePair("qh3", "qh3", cert)
    pair.handshake()
    pair.settle()
    quic = pair.client.engine._quic  # type: ignore[attr-defined]
    timers = []
    for _ in range(40):
        assert quic._core.poll_transmit(pair.now) is None
        timers.append(quic._core.get_timer())
    assert any(t is not None and t[0] == "pacing" for t in timers)


def test_a_peer_close_is_not_logged_as_a_warning(
    cert: ServerCertificate, caplog: pytest.LogCaptureFixture
) -> None:
    # qh3's facade logs each peer CONNECTION_CLOSE at WARNING under "quic" with this format; a
    # busy node disconnects all the time, so we demote exactly that record to our DEBUG log.
    caplog.set_level(logging.DEBUG)
    pair = EnginePair("qh3", "qh3", cert)
    pair.handshake()
    pair.client.engine.close(0, "bye")
    pair.settle()
    quic_warnings = [r for r in caplog.records if r.name == "quic" and r.levelno >= logging.WARNING]
    assert quic_warnings == []
    ours = [r for r in caplog.records if r.name.startswith("py_libp2p_webtransport.engine.qh3")]
    assert any("peer closed the connection" in r.getMessage() for r in ours)


def test_client_auth_workaround_hooks_exist() -> None:
    # engine/qh3/client_auth.py wraps these qh3.tls functions and extends these Context
    # methods; it also reads the key schedule's hashlib object and the TLS fields below.
    import inspect

    from qh3 import tls as qh3_tls

    from py_libp2p_webtransport.engine.qh3 import client_auth

    for name in client_auth.PATCHED_FUNCTIONS:
        assert callable(getattr(qh3_tls, name)), name
    for name in client_auth.PATCHED_METHODS:
        assert callable(getattr(qh3_tls.Context, name)), name
    assert list(inspect.signature(qh3_tls.Context._server_handle_hello).parameters) == [
        "self",
        "input_buf",
        "initial_buf",
        "handshake_buf",
        "onertt_buf",
    ]
    assert "hash" in inspect.getsource(qh3_tls.KeySchedule.__init__)
    source = inspect.getsource(qh3_tls.Context._server_handle_hello)
    # The anticipated client Finished (the second push_finished) and the ALPN callback
    # before the certificate is written.
    assert source.count("push_finished(") == 2
    assert source.index("alpn_cb(") < source.index("push_certificate(")
