"""The qh3 engine: qh3's ``QuicConnection`` (a native packet core) behind ``QuicEngine``.

qh3 is several times cheaper per packet than aioquic. Its Python facade is subclassed, each
private name guarded by named tests in ``tests/engine/test_private_api_qh3.py``:

* **Core and TLS construction** (``_create_core``, ``_create_tls``) are ours, so the configured
  ``MAX_STREAMS`` are both enforced and advertised (qh3 fixes them at 100/103 in both places),
  and so the zero-length-CID workaround can choose the core's connection ids.
* **Zero-length client connection ids** (Chromium) need ``qh3_zero_length_cid``.
* **The server's handshake receive path** keeps padding after a packet with that packet (see
  ``_Qh3Connection.receive_datagram``); without it aioquic clients cannot connect.
* **A receive budget.** qh3's core returns flow-control credit when its stream events are
  popped, and its facade pops them all eagerly, so credit follows arrival. The only lossless
  bound is per connection: we stop popping the core while more than ``recv_budget`` delivered
  bytes are unread (not yet ``consume()``d) and resume when ``consume()`` brings them back
  under. A slow stream then stalls its fast siblings, and datagrams, resets and close notices
  wait too (termination is never held back: a closing core is always drained).

Datagram size: a qh3 server sends ``max_datagram_size``; a qh3 *client* starts at 1280 and
probes the path MTU up to 1472 bytes whatever ``max_datagram_size`` says (without probing it
would stay at 1280). Probing is safe: a lost probe only ends the search.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import qh3
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from qh3 import _hazmat
from qh3.quic import events as qh3_events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection, QuicConnectionError
from qh3.quic.packet import (
    QuicErrorCode,
    QuicPacketType,
    pull_quic_transport_parameters,
    push_quic_transport_parameters,
)
from qh3.tls import ExtensionType, load_pem_private_key

from ..errors import EngineError, StreamLimitReached
from . import qh3_zero_length_cid as zero_cid
from ._adapter import (
    AdapterBase,
    ReadAccount,
    check_config,
    der_certificate,
    der_private_key,
    require_private_api,
)
from .base import Address, EngineConfig, EngineStats
from .qh3_fin_hold import FinHold
from .qh3_send_gate import SendGate, send_budget

# Core states in which credit no longer matters: always drain so termination surfaces.
_ENDING_STATES = frozenset({"closing", "draining", "terminated"})
# Free congestion window (bytes) above which qh3's core holds no unbuilt stream reservation
# after transmitting: one datagram of the largest size it may use (PMTU probing reaches 1472).
_WINDOW_OPEN = 1500


class _Qh3Connection(QuicConnection):
    """qh3's facade with our core construction, the CID workaround and the receive budget."""

    def __init__(
        self,
        *,
        max_streams_bidi: int,
        max_streams_uni: int,
        recv_budget: int,
        unread: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wt_max_streams = (max_streams_bidi, max_streams_uni)
        self.wt_recv_budget = recv_budget
        self.wt_unread = unread  # the adapter's ReadAccount: total unread bytes
        self.wt_zero_length_peer_cid = False
        self.wt_now: float | None = None  # the latest time we were given
        self.wt_stash: list[tuple[bytes, Any]] = []  # built while draining, sent next
        self.wt_window_closed = False  # the last transmit ended with the window full

    # --- draining: the receive budget and the reservation guard ----------------------------------
    def wt_over_budget(self) -> bool:
        return bool(self.wt_unread.total > self.wt_recv_budget)

    def _drain_core(self) -> None:
        core = self._core
        if core is not None and core.state not in _ENDING_STATES:
            if self.wt_over_budget():
                return  # leave events (and so credit) in the core until the reader catches up
            if not self._wt_reservations_built():
                return  # popping a StreamFinished now could break a pending reservation
        super()._drain_core()

    def _wt_reservations_built(self) -> bool:
        """Build what the core has reserved; True once no reservation can be pending.

        qh3 2.1.0 removes a finished stream when its StreamFinished event is popped, even while
        a frame reserved for it (a PTO probe copy or a retransmission of bytes that were then
        acknowledged after all) waits unbuilt in ``pending_streams``; committing that frame
        later raises ValueError("reserved stream is missing") from ``poll_transmit`` and the
        connection is lost. The core leaves reservations pending only while its congestion
        window is closed (less than a datagram free) after transmitting, so we transmit first
        (stashing the datagrams for the next ``datagrams_to_send``) and pop events only when
        the window is open; otherwise the events wait for the acknowledgements that open it.
        """
        if not self.wt_window_closed or not self._handshake_complete or self.wt_now is None:
            return True  # no reservation outlives a transmit that left the window open
        # Only now: every poll_transmit with an open window spends pacing credit, sent or not.
        self.wt_stash.extend(self._wt_poll(self.wt_now))
        return not self.wt_window_closed

    def _wt_poll(self, now: float) -> list[tuple[bytes, Any]]:
        """Poll the native core directly (qh3's facade loop costs ~20 % of a sender's CPU).

        qh3's ``datagrams_to_send`` re-parses every packet header of every datagram for its
        qlog even when no logger is set. Without a logger we call ``poll_transmit`` ourselves
        (same calls and order, minus the logging); with one, the facade does it all.
        """
        core = self._core
        if core is None or self._quic_logger is not None:
            out = super().datagrams_to_send(now)
        else:
            out = []
            append = out.append
            poll = core.poll_transmit
            try:
                while (transmit := poll(now)) is not None:
                    append((transmit[0], transmit[1]))
            except RuntimeError as exc:  # as the facade's ``_call_core`` translates it
                raise QuicConnectionError(QuicErrorCode.INTERNAL_ERROR, None, str(exc)) from exc
        self.wt_window_closed = bool(
            core is not None and core.congestion_window - core.bytes_in_flight < _WINDOW_OPEN
        )
        return out

    def wt_resume(self) -> None:
        """Pop what the core held back, once ``consume()`` brought us under budget."""
        if self._core is not None:
            self._drain_core()

    def receive_many_datagrams(self, datagrams: list[bytes], addr: Any, now: float) -> None:
        self.wt_now = now
        super().receive_many_datagrams(datagrams, addr, now)

    def handle_timer(self, now: float) -> None:
        self.wt_now = now
        super().handle_timer(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        self.wt_now = now
        out = self.wt_stash
        self.wt_stash = []
        out.extend(self._wt_poll(now))
        core = self._core
        if core is not None and core.has_events:
            self._drain_core()  # what waited for the window (the pump collects it next)
            out.extend(self.wt_stash)
            self.wt_stash = []
        return out

    # --- server handshake receive path -----------------------------------------------------------
    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        self.wt_now = now
        if self._is_client or self._handshake_complete:
            super().receive_datagram(data, addr, now)
            return
        # A server before handshake completion: qh3 2.1.0's loop, with two changes. The
        # zero-length-CID workaround is switched on before the core exists, and padding after
        # the last packet (aioquic pads Initial datagrams that way) is fed together with that
        # packet: qh3 credits the anti-amplification budget per core call, so a separate call
        # for the padding leaves a budget too small for the server's first flight and its
        # packet builder fails ("packet builder capacity exhausted").
        address = self._normalize_address(addr)
        self._log_datagram("datagrams_received", data)
        if self._core is None and not self._start_server(data, address, now):
            return
        core = self._require_core()
        cid_length = self._configuration.connection_id_length
        offset = 0
        while offset < len(data):
            end = _packet_end(data, offset, cid_length)
            if end < len(data) and _packet_end(data, end, cid_length) <= end:
                end = len(data)  # the rest is no packet: padding stays with this one
            packet = data[offset:end]
            report = self._call_core(core.receive_datagram, packet, address, now, len(data))
            if report[2]:
                self._log_packet("packet_received", packet, end - offset)
                self._learn_remote_source_cid(packet)
            elif report[4]:
                self._log_packet_dropped(packet)
            self._drain_core()
            offset = end

    def _start_server(self, data: bytes, address: Any, now: float) -> bool:
        """Create core and TLS for the client's first Initial, as qh3 does (False: ignore it)."""
        if len(data) < 1200:
            return False
        try:
            header = _hazmat.pull_quic_header(data, 0, self._configuration.connection_id_length)
        except ValueError:
            return False
        if header[1] != int(QuicPacketType.INITIAL):
            return False
        if header[0] not in self._configuration.supported_versions:
            return False
        zero_cid.prepare_server(self, data)
        self._remote_addr = address
        self._version = header[0]
        self._create_core(address, header[3], now)
        self._create_tls(remote_source_cid=None)
        return True

    # --- core construction and the zero-length CID workaround -----------------------------------

    def _create_core(self, remote_addr: Any, initial_dcid: bytes, now: float) -> None:
        configuration = self._configuration
        source_cid, destination_cid = self.host_cid, initial_dcid
        if self.wt_zero_length_peer_cid:
            source_cid, destination_cid = zero_cid.core_connection_ids(self, initial_dcid)
        max_streams_bidi, max_streams_uni = self.wt_max_streams
        version = int(self._version or configuration.supported_versions[0])
        # Same arguments as qh3 2.1.0's own _create_core (no session tickets: we never resume),
        # except the local stream limits and, under the workaround, the two connection ids.
        self._core = _hazmat.QuicConnectionCore(
            self._is_client,
            version,
            ("0.0.0.0", 0),
            remote_addr,
            source_cid,
            destination_cid,
            self._is_client or self._retry_source_connection_id is not None,
            configuration.active_connection_id_limit or (2 if self._is_client else 8),
            configuration.max_datagram_size,
            configuration.probe_datagram_size,
            configuration.idle_timeout,
            3,  # ack_delay_exponent
            configuration.max_datagram_frame_size,
            None,  # peer_max_datagram_frame_size (no remembered parameters)
            configuration.max_data,
            0,
            configuration.max_stream_data,
            0,
            0,
            0,
            configuration.max_stream_data,  # max_stream_reassembly
            max_streams_bidi,
            max_streams_uni,
            0,
            0,
            configuration.initial_rtt,
            0.025,  # max_ack_delay
            now,
        )
        if self.wt_zero_length_peer_cid:
            zero_cid.install_initial_keys(self._core, initial_dcid, version)
        self._applied_transport_parameters = None
        self._pre_handshake_state_replayed = False

    def _create_tls(self, remote_source_cid: bytes | None) -> Any:
        # qh3 advertises MAX_STREAMS 100/103 whatever the core enforces; advertise ours.
        bridge = super()._create_tls(remote_source_cid)
        stock = bridge.serialize_transport_parameters
        bidi, uni = self.wt_max_streams
        capacity = 3 * self._configuration.max_datagram_size

        def serialize() -> bytes:
            return _with_stream_limits(stock(), bidi, uni, capacity)

        bridge.serialize_transport_parameters = serialize  # type: ignore[method-assign]
        bridge.tls.handshake_extensions = [
            (kind, serialize() if kind == ExtensionType.QUIC_TRANSPORT_PARAMETERS else value)
            for kind, value in bridge.tls.handshake_extensions
        ]
        return bridge

    def _learn_remote_source_cid(self, data: bytes) -> None:
        if self.wt_zero_length_peer_cid:
            zero_cid.learn_empty_source_cid(self, data)
        else:
            super()._learn_remote_source_cid(data)


# qh3 facade methods _Qh3Connection overrides or calls (guarded by test_private_api_qh3.py).
_PATCHED = (
    "_create_core",
    "_create_tls",
    "_drain_core",
    "_learn_remote_source_cid",
    "_call_core",
    "_require_core",
    "_normalize_address",
)


# qh3 facade attributes holding the next local stream ids (see Qh3Engine.send_stream_data).
_NEXT_STREAM_IDS = (
    "_next_stream_id_bidi",
    "_local_next_stream_id_bidi",
    "_next_stream_id_uni",
    "_local_next_stream_id_uni",
)


def _with_stream_limits(encoded: bytes, bidi: int, uni: int, capacity: int) -> bytes:
    """Transport parameters ``encoded`` with our initial_max_streams_{bidi,uni}."""
    parameters = pull_quic_transport_parameters(_hazmat.Buffer(data=encoded))
    parameters.initial_max_streams_bidi = bidi
    parameters.initial_max_streams_uni = uni
    buf = _hazmat.Buffer(capacity=capacity)
    push_quic_transport_parameters(buf, parameters)
    return bytes(buf.data)


def _packet_end(data: bytes, offset: int, cid_length: int) -> int:
    """End of the QUIC packet at ``offset``; ``offset`` itself if none parses there."""
    try:
        end: int = _hazmat.pull_quic_header(data, offset, cid_length)[9]
    except ValueError:
        return offset
    return end if end > offset else len(data)


def _configuration(config: EngineConfig) -> QuicConfiguration:
    quic_config = QuicConfiguration(
        is_client=config.is_client,
        alpn_protocols=list(config.alpn_protocols),
        max_datagram_size=config.max_datagram_size,
        max_data=config.max_data,
        max_stream_data=config.max_stream_data,
        idle_timeout=config.idle_timeout,
        # qh3 refuses WebTransport without it; the peer sees it as a transport parameter.
        max_datagram_frame_size=config.max_datagram_frame_size,
        server_name=config.server_name,
    )
    if config.is_client and not config.verify_peer:
        # The libp2p layer pins the certificate by hash through peer_certificate_der().
        quic_config.verify_mode = ssl.CERT_NONE
        quic_config.verify_hostname = False
    if not config.is_client:
        if config.certificate_der is None or config.private_key_der is None:
            raise EngineError("a server engine needs certificate_der and private_key_der")
        try:
            key = load_der_private_key(der_private_key(config.private_key_der), None)
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            quic_config.private_key = load_pem_private_key(pem)
            quic_config.certificate = _hazmat.Certificate(der_certificate(config.certificate_der))
        except Exception as exc:  # qh3's native loaders raise their own exception types
            raise EngineError(f"unusable server certificate or key: {exc}") from exc
    if config.qlog_dir is not None:
        from qh3.quic.logger import QuicFileLogger

        quic_config.quic_logger = QuicFileLogger(config.qlog_dir)
    return quic_config


class Qh3Engine(AdapterBase):
    """``QuicEngine`` over qh3; ``consume()`` feeds the per-connection receive budget."""

    name = "qh3"
    _library_errors = (QuicConnectionError, AssertionError, ValueError, KeyError, RuntimeError)

    def __init__(
        self,
        config: EngineConfig,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        send_gate: bool = True,
        fin_hold: bool = True,
    ) -> None:
        """``send_gate=False`` hands every write to the core at once, ``fin_hold=False`` every
        FIN (only for tests that show the qh3 bugs the two prevent)."""
        check_config(config)
        require_private_api("qh3", qh3.__version__, QuicConnection, _PATCHED)
        if not config.is_client and original_destination_connection_id is None:
            raise EngineError("a server engine needs the client's original destination CID")
        reads = ReadAccount()
        quic = _Qh3Connection(
            configuration=_configuration(config),
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
            max_streams_bidi=config.max_streams_bidi,
            max_streams_uni=config.max_streams_uni,
            recv_budget=config.recv_budget,
            unread=reads,
        )
        super().__init__(config, quic, qh3_events, reads)
        # Stream data the core's congestion window cannot take yet (see qh3_send_gate).
        self._gate: SendGate | None = SendGate() if send_gate else None
        # FINs without data that must wait for their stream's data to be acknowledged.
        self._fins: FinHold | None = FinHold() if fin_hold else None

    def receive_datagrams(self, datagrams: Iterable[bytes], addr: Address, now: float) -> None:
        """Feed a batch through qh3's native ``receive_many_datagrams``."""
        batch = datagrams if isinstance(datagrams, list) else list(datagrams)
        for data in batch:
            self._bytes_received += len(data)
        self._packets_received += len(batch)
        self._quic.receive_many_datagrams(batch, addr, now)
        self._note_close_on_receive()

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data``; ``StreamLimitReached`` when a new stream exceeds the peer's limit.

        What the core's congestion window cannot carry yet waits in the send gate (see
        ``qh3_send_gate``); the first bytes (or an empty write) always reach the core at once,
        so a new stream takes its id and meets the stream limit here. A FIN without data may
        wait for the stream's data to be acknowledged (see ``qh3_fin_hold``).
        """
        gate = self._gate
        core = self._quic._core
        fins = self._fins
        if fins is not None and fins.holds(stream_id):
            raise EngineError(f"stream {stream_id}: write after the end of the stream")
        if core is None:
            self._send_to_core(stream_id, data, end_stream)
            return
        if gate is not None and gate.holds(stream_id):
            gate.hold(stream_id, data, end_stream)
            return
        if not data and end_stream and fins is not None and self._hold_fin(stream_id):
            return
        if gate is None:
            self._send_to_core(stream_id, data, end_stream)
            return
        budget = self._send_budget()
        if len(data) <= budget:
            self._send_to_core(stream_id, data, end_stream)
            return
        self._send_to_core(stream_id, data[:budget], False)
        gate.hold(stream_id, data[budget:], end_stream)

    def _hold_fin(self, stream_id: int) -> bool:
        """True if the FIN (without data) of ``stream_id`` waits in the FIN hold."""
        assert self._fins is not None
        core = self._quic._core
        return self._fins.hold_if_needed(
            stream_id,
            self._quic.wt_now or 0.0,
            losses=core.loss_total,
            unsent=core.get_send_buffer_size(stream_id),
            reservation_possible=self._quic.wt_window_closed,
            in_flight=self._in_flight,
        )

    def _in_flight(self) -> tuple[int, int] | None:
        """Lowest and highest application packet number in flight (None: nothing is)."""
        core = self._quic._core
        if core is None or core.bytes_in_flight == 0:
            return None  # what stays outstanding then are ACK-only packets: nothing to wait for
        numbers = [packet[0] for packet in core.outstanding_application_packets]
        return (min(numbers), max(numbers)) if numbers else None

    def _release_fins(self, now: float) -> bool:
        """Hand the core the held FINs whose data is acknowledged now; True if any went."""
        fins = self._fins
        core = self._quic._core
        if fins is None or not len(fins) or core is None:
            return False
        ready = fins.due(
            now, losses=core.loss_total, rtt=core.smoothed_rtt or 0.0, in_flight=self._in_flight
        )
        for stream_id in ready:
            try:
                self._quic.send_stream_data(stream_id, b"", True)
            except self._library_errors:
                pass  # the stream was reset or the connection is closing meanwhile
        return bool(ready)

    def get_timer(self) -> float | None:
        """The core's next timer, or earlier when a held FIN needs time to pass."""
        timer = super().get_timer()
        fins = self._fins
        core = self._quic._core
        if fins is not None and len(fins) and core is not None:
            extra = fins.deadline(self._quic.wt_now or 0.0, core.smoothed_rtt or 0.0)
            if extra is not None and (timer is None or extra < timer):
                timer = extra
        return timer

    def _send_budget(self) -> int:
        core = self._quic._core
        return send_budget(
            core.congestion_window, core.bytes_in_flight, core.get_send_buffer_size(None)
        )

    def _release_held(self) -> None:
        """Hand the core what its window can take now, round-robin over the held streams."""
        gate = self._gate
        if gate is None or not len(gate) or self._quic._core is None:
            return
        for stream_id, chunk, end_stream in gate.release(self._send_budget()):
            try:
                self._quic.send_stream_data(stream_id, chunk, end_stream)
                self._note_written(stream_id, end_stream)
            except self._library_errors:
                # The stream can no longer send (reset, STOP_SENDING, connection closing):
                # the application hears of that through the stream's own events.
                gate.drop(stream_id)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Release held stream data the window can take, then collect the datagrams (straight
        from the native core, see ``_Qh3Connection._wt_poll``); then FINs held until their
        data was acknowledged (see ``qh3_fin_hold``), which what was just sent may allow."""
        if self._gate is not None and len(self._gate):
            self._release_held()
        out: list[tuple[bytes, Address]] = self._quic.datagrams_to_send(now)
        if self._release_fins(now):
            out.extend(self._quic.datagrams_to_send(now))
        self._packets_sent += len(out)
        nbytes = 0
        for data, _ in out:
            nbytes += len(data)
        self._bytes_sent += nbytes
        return out

    def _note_written(self, stream_id: int, end_stream: bool) -> None:
        """Data (and maybe the FIN) of ``stream_id`` went to the core: tell the FIN hold."""
        fins = self._fins
        if fins is not None:
            if end_stream:
                fins.forget(stream_id)
            elif self._quic._core is not None:
                fins.wrote(stream_id, self._quic._core.loss_total)

    def _send_to_core(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Write straight to the core; ``StreamLimitReached`` when a new stream exceeds the
        peer's limit.

        aioquic queues such a stream until MAX_STREAMS arrives; qh3's core refuses it
        (ValueError) but its facade has already taken the id (``_record_local_stream``): we give
        the id back, or every retry would burn one more id past the peer's limit and never fit.
        """
        quic = self._quic
        ids = tuple(getattr(quic, name) for name in _NEXT_STREAM_IDS)
        known = stream_id in quic._created_local_stream_ids
        try:
            quic.send_stream_data(stream_id, data, end_stream)
            if data or end_stream:
                self._note_written(stream_id, end_stream)
        except ValueError as exc:
            if "stream limit" in str(exc):
                for name, value in zip(_NEXT_STREAM_IDS, ids, strict=True):
                    setattr(quic, name, value)
                if not known:
                    quic._created_local_stream_ids.discard(stream_id)
                raise StreamLimitReached(f"{self.name}: stream {stream_id}: {exc}") from exc
            raise EngineError(f"{self.name}: send_stream_data({stream_id}) failed: {exc}") from exc
        except self._library_errors as exc:
            raise EngineError(f"{self.name}: send_stream_data({stream_id}) failed: {exc}") from exc

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM; a no-op once every byte we sent was acknowledged.

        RFC 9000 §3.1 has no reset in "Data Recvd" (nothing left to abort), but qh3's core raises
        for it. A reset racing the peer's last ACK is normal (e.g. a handler resetting a stream
        right after closing it), so it must not surface as an engine failure.
        """
        if self._gate is not None:
            self._gate.drop(stream_id)
        if self._fins is not None:
            self._fins.forget(stream_id)
        try:
            self._quic.reset_stream(stream_id, error_code)
        except ValueError as exc:
            if "completed stream" not in str(exc):
                raise EngineError(f"{self.name}: reset_stream({stream_id}) failed: {exc}") from exc
        except self._library_errors as exc:
            raise EngineError(f"{self.name}: reset_stream({stream_id}) failed: {exc}") from exc

    def consume(self, stream_id: int, n: int) -> None:
        """Account ``n`` read bytes; resumes taking events from the core once under budget.

        Call ``next_event()`` and ``datagrams_to_send()`` afterwards: resuming may have made
        events ready and credit (MAX_DATA / MAX_STREAM_DATA) due.
        """
        self._reads.consumed(stream_id, n)
        self._quic.wt_resume()

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` not yet transmitted once (qh3 does not expose unacked bytes)."""
        try:
            size: int = self._quic.get_send_buffer_size(stream_id)
        except ValueError as exc:
            raise EngineError(str(exc)) from exc
        if self._gate is not None and self._quic._close_event is None:
            size += self._gate.held_bytes(stream_id)
        return size

    def close(self, error_code: int = 0, reason: str = "") -> None:
        """CONNECTION_CLOSE; held stream data and FINs are dropped with the connection."""
        if self._gate is not None:
            self._gate.clear()
        if self._fins is not None:
            self._fins.clear()
        super().close(error_code, reason)

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf certificate (DER) once the handshake has received it."""
        cert = self._quic.get_peercert()
        return None if cert is None else bytes(cert.public_bytes())

    @property
    def receive_paused(self) -> bool:
        """True while the budget holds events (and credit) back in the core."""
        return bool(self._quic.wt_over_budget())

    def stats(self) -> EngineStats:
        core = self._quic._core
        return EngineStats(
            rtt=(core.smoothed_rtt or 0.0) if core is not None else 0.0,
            cwnd=core.congestion_window if core is not None else 0,
            bytes_in_flight=core.bytes_in_flight if core is not None else 0,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            packets_sent=self._packets_sent,
            packets_received=self._packets_received,
            packets_lost=core.loss_total if core is not None else 0,
        )
