"""qh3's ``QuicConnection`` facade, subclassed: our core construction, the zero-length-CID
workaround, the server's handshake receive path, the receive budget and the reservation guard.

Every private name of qh3 used here is guarded by ``tests/engine/test_private_api_qh3.py``
(``PATCHED`` lists the facade methods overridden or called).
"""

from __future__ import annotations

import logging
from typing import Any

from qh3 import _hazmat
from qh3.quic.connection import QuicConnection, QuicConnectionError
from qh3.quic.packet import (
    QuicErrorCode,
    QuicPacketType,
    pull_quic_transport_parameters,
    push_quic_transport_parameters,
)
from qh3.tls import ExtensionType

from ..reset_token import reset_token
from . import zero_length_cid as zero_cid

logger = logging.getLogger(__name__)


class _PeerCloseIsNotAWarning(logging.Filter):
    """qh3's facade logs every CONNECTION_CLOSE a peer sends at WARNING ("Native peer close"):
    one line per ordinary disconnect, thousands on a busy node, and each kept by any handler that
    keeps records. It is not a problem; we log it at DEBUG instead (the adapter reports the close
    as ``ConnectionTerminated``). Other qh3 warnings pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Native peer close: %r":
            return True
        logger.debug("peer closed the connection: %r", record.args)
        return False


logging.getLogger("quic").addFilter(_PeerCloseIsNotAWarning())

# Core states in which credit no longer matters: always drain so termination surfaces.
ENDING_STATES = frozenset({"closing", "draining", "terminated"})
# Free congestion window (bytes) above which qh3's core holds no unbuilt stream reservation
# after transmitting: one datagram of the largest size it may use (PMTU probing reaches 1472).
WINDOW_OPEN = 1500


class Qh3Connection(QuicConnection):
    """qh3's facade with our core construction, the CID workaround and the receive budget."""

    def __init__(
        self,
        *,
        max_streams_bidi: int,
        max_streams_uni: int,
        recv_budget: int,
        unread: Any,
        reset_secret: bytes | None = None,
        alpn_hook: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wt_reset_secret = reset_secret
        self.wt_alpn_hook = alpn_hook  # server: per-ALPN certificate, client authentication
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
        if core is not None and core.state not in ENDING_STATES:
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
            core is not None and core.congestion_window - core.bytes_in_flight < WINDOW_OPEN
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

        secret = self.wt_reset_secret
        if secret is not None:
            self._wt_derive_reset_tokens(bridge, secret)
        bridge.serialize_transport_parameters = serialize  # type: ignore[method-assign]
        bridge.tls.handshake_extensions = [
            (kind, serialize() if kind == ExtensionType.QUIC_TRANSPORT_PARAMETERS else value)
            for kind, value in bridge.tls.handshake_extensions
        ]
        if self.wt_alpn_hook is not None:
            self.wt_alpn_hook(bridge.tls)
        return bridge

    def _wt_derive_reset_tokens(self, bridge: Any, secret: bytes) -> None:
        """Stateless reset with qh3: the server's transport parameter carries the token derived
        from our first connection id (qh3 draws a random one). The native core draws the tokens
        of the ids it issues later (NEW_CONNECTION_ID) itself and cannot be told ours, nor be
        kept from issuing them (it refuses a peer limit below 2): a peer that switches to such
        an id is not reset after a restart (it waits for its idle timeout, as without resets).
        Peers keep the first id unless they migrate; aioquic, qh3 and Chromium do.
        """
        if not self._is_client:
            # ``host_cid`` is final here: the zero-length-CID workaround set it before.
            bridge.stateless_reset_token = reset_token(secret, self.host_cid)

    def wt_peer_reset_tokens(self) -> list[bytes]:
        """The token the peer's transport parameters carry (servers send one), if any."""
        parameters = None if self._tls is None else self._tls.remote_transport_parameters
        token = None if parameters is None else parameters.stateless_reset_token
        return [token] if token else []

    def _learn_remote_source_cid(self, data: bytes) -> None:
        if self.wt_zero_length_peer_cid:
            zero_cid.learn_empty_source_cid(self, data)
        else:
            super()._learn_remote_source_cid(data)


# qh3 facade methods Qh3Connection overrides or calls (guarded by test_private_api_qh3.py).
PATCHED = (
    "_create_core",
    "_create_tls",
    "_drain_core",
    "_learn_remote_source_cid",
    "_call_core",
    "_require_core",
    "_normalize_address",
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
