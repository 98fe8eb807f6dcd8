"""What the qh3 and aioquic adapters share: event translation, read accounting, counters.

Both libraries expose an aioquic-shaped ``QuicConnection`` whose events carry the same field
names, so one translator serves both once it is given the library's ``events`` module. The
library-specific parts (flow control, private-API shims) live in the subclasses; configuration
is ``quic_config.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from .._errors import EngineError, FlowControlError
from .base import (
    Address,
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    DatagramReceived,
    EngineConfig,
    EngineEvent,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)


def require_private_api(library: str, version: str, cls: type, names: tuple[str, ...]) -> None:
    """Raise ``EngineError`` naming what is missing if ``cls`` lacks a private API we patch."""
    missing = [name for name in names if not callable(getattr(cls, name, None))]
    if missing:
        raise EngineError(
            f"{library} {version} lacks {', '.join(missing)} that this adapter relies on "
            f"(tested: aioquic 1.7.2, qh3 2.1.0); choose the other engine or a tested version"
        )


def install_alpn_hook(
    tls: Any,
    identities: dict[str, tuple[Any, Any]],
    client_auth: frozenset[str],
    request_client_certificate: Callable[[Any], None],
) -> None:
    """Per-ALPN server identity and client authentication on a library's TLS context.

    Both libraries call ``tls.alpn_cb`` once the ALPN is chosen and before the server's
    certificate is written, so the certificate can still be switched and a client certificate
    requested there (``EngineConfig.alpn_certificates``, ``client_auth_alpns``).
    """
    stock = tls.alpn_cb

    def on_alpn(alpn: str | None) -> None:
        identity = identities.get(alpn or "")
        if identity is not None:
            tls.certificate, tls.certificate_private_key = identity
        if alpn in client_auth:
            request_client_certificate(tls)
        if stock is not None:
            stock(alpn)

    tls.alpn_cb = on_alpn


#: The longest a keepalive PING waits past its interval (see ``keepalive_slot``).
KEEPALIVE_SLOT = 1.0


def keepalive_slot(interval: float) -> float:
    """Keepalive deadlines are rounded up to a multiple of this (a tenth of the interval, at
    most ``KEEPALIVE_SLOT``), so that the PINGs of many idle connections fall due together and
    go out in one pump turn and one ``sendmmsg``, and their ACKs come back together: with 5,000
    idle connections a PING each every 15 s was ~330 separate wakeups a second.

    A server's PING waits two slots more than a client's (``AdapterBase._arm_keepalive``): when
    both ends keep alive, the client's PING always comes first and re-arms the server's, so one
    PING and one ACK cross per interval, not two of each (the rounding made both ends fall due
    in the same slot). Two, not one: the client re-arms on the ACK of its PING, up to an ACK
    delay and a one-way trip after the server re-armed on the PING, and that may cross a slot
    boundary. A client that never pings (a browser) gets the server's two slots later."""
    return min(KEEPALIVE_SLOT, interval / 10)


class ReadAccount:
    """Per-stream bytes delivered to the application and not yet ``consume()``d.

    Entries disappear once a stream's receive side has ended (FIN delivered or reset) and every
    delivered byte was consumed, so the table stays as small as the set of live streams.
    """

    __slots__ = ("_ended", "_unread", "total")

    def __init__(self) -> None:
        self._unread: dict[int, int] = {}
        self._ended: set[int] = set()
        self.total = 0  # sum over all streams

    def delivered(self, stream_id: int, n: int, ended: bool) -> None:
        self._unread[stream_id] = self._unread.get(stream_id, 0) + n
        self.total += n
        if ended:
            self._ended.add(stream_id)
            self._forget_if_done(stream_id)

    def consumed(self, stream_id: int, n: int) -> None:
        if n <= 0:
            if n < 0:
                raise FlowControlError(f"cannot consume a negative byte count ({n})")
            return
        unread = self._unread.get(stream_id)
        if unread is None or n > unread:
            raise FlowControlError(
                f"stream {stream_id}: consume({n}) exceeds the {unread or 0} unread bytes"
            )
        self._unread[stream_id] = unread - n
        self.total -= n
        self._forget_if_done(stream_id)

    def unread(self, stream_id: int) -> int:
        return self._unread.get(stream_id, 0)

    def by_stream(self) -> dict[int, int]:
        """Streams with unread bytes, and how many (a new dict)."""
        return {stream_id: n for stream_id, n in self._unread.items() if n}

    def __len__(self) -> int:
        return len(self._unread)

    def _forget_if_done(self, stream_id: int) -> None:
        if stream_id in self._ended and self._unread.get(stream_id) == 0:
            del self._unread[stream_id]
            self._ended.discard(stream_id)


class AdapterBase:
    """Common half of an engine adapter; ``self._quic`` is the library connection."""

    name = "base"
    # What the library raises for a call that is invalid in the current state.
    _library_errors: tuple[type[BaseException], ...] = (AssertionError, ValueError, KeyError)

    def __init__(
        self,
        config: EngineConfig,
        quic: Any,
        events: ModuleType,
        reads: ReadAccount | None = None,
    ) -> None:
        self._config = config
        self._quic = quic
        self._reads = reads if reads is not None else ReadAccount()
        self._issued_cids: list[bytes] = []
        self._retired_cids: set[bytes] = set()
        self._closed_locally = False
        self._close_seen_on_receive = False
        self._bytes_sent = self._bytes_received = 0
        self._packets_sent = self._packets_received = 0
        # Keepalive: a PING when nothing arrived for this long (see EngineConfig).
        interval = config.keepalive_interval
        self._keepalive = None if interval is None else min(interval, config.idle_timeout / 2)
        self._keepalive_slot = 1.0 if self._keepalive is None else keepalive_slot(self._keepalive)
        # The server yields to the client's PING (see ``keepalive_slot``).
        self._keepalive_lag = 0.0 if config.is_client else 2 * self._keepalive_slot
        self._keepalive_at: float | None = None  # armed by datagrams after the handshake
        self._handshake_done = False
        self._ping_uid = 0
        self._translate: dict[type, Callable[[Any], EngineEvent | None]] = {
            events.StreamDataReceived: self._on_stream_data,
            events.StreamReset: self._on_stream_reset,
            events.StopSendingReceived: lambda e: StopSendingReceived(e.stream_id, e.error_code),
            events.DatagramFrameReceived: lambda e: DatagramReceived(bytes(e.data)),
            events.HandshakeCompleted: self._on_handshake_completed,
            events.ConnectionIdIssued: self._on_cid_issued,
            events.ConnectionIdRetired: self._on_cid_retired,
            events.ConnectionTerminated: self._on_terminated,
        }

    # --- input ----------------------------------------------------------------------------------
    def connect(self, addr: Address, now: float) -> None:
        """Client only: start the handshake towards ``addr``."""
        if not self._config.is_client:
            raise EngineError("connect() is for client engines; servers answer an Initial")
        self._quic.connect(addr, now)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Feed one UDP payload received from ``addr``."""
        self._bytes_received += len(data)
        self._packets_received += 1
        self._quic.receive_datagram(data, addr, now)
        self._note_close_on_receive()
        if self._keepalive is not None and self._handshake_done:
            self._arm_keepalive(now)

    def receive_datagrams(self, datagrams: Iterable[bytes], addr: Address, now: float) -> None:
        """Feed many UDP payloads from one address (one call per socket wakeup)."""
        for data in datagrams:
            self._bytes_received += len(data)
            self._packets_received += 1
            self._quic.receive_datagram(data, addr, now)
        self._note_close_on_receive()
        if self._keepalive is not None and self._handshake_done:
            self._arm_keepalive(now)

    def _arm_keepalive(self, now: float) -> None:
        """The next PING, ``keepalive`` after ``now`` rounded up to the slot, two slots later on
        a server (see ``keepalive_slot``)."""
        assert self._keepalive is not None
        slot = self._keepalive_slot
        self._keepalive_at = math.ceil((now + self._keepalive) / slot) * slot + self._keepalive_lag

    def handle_timer(self, now: float) -> None:
        """Run whatever was due at ``get_timer()`` (loss recovery, idle timeout, acks, and the
        keepalive PING: its ACK is the peer's proof of life, our PING is the peer's)."""
        due = self._keepalive_at
        if due is not None and due <= now:
            self._keepalive_at = None  # re-armed by the next datagram received (the ACK)
            if not self._closed_locally and not self._close_seen_on_receive:
                self._ping_uid += 1
                try:
                    self._quic.send_ping(self._ping_uid)
                except self._library_errors:
                    pass  # a connection that cannot take a PING is ending; its timers end it
        # Only when the library's own timer is due: the keepalive may fire first, and aioquic's
        # handle_timer fails when its close timer is unset.
        library_timer = self._quic.get_timer()
        if library_timer is not None and library_timer <= now:
            self._quic.handle_timer(now)

    # --- output ---------------------------------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Everything that may be sent now; call after every input and after ``consume()``."""
        out: list[tuple[bytes, Address]] = self._quic.datagrams_to_send(now)
        self._packets_sent += len(out)
        for data, _ in out:
            self._bytes_sent += len(data)
        return out

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (absolute, same clock as ``now``)."""
        timer: float | None = self._quic.get_timer()
        keepalive = self._keepalive_at
        if keepalive is not None and (timer is None or keepalive < timer):
            return keepalive
        return timer

    def next_event(self) -> EngineEvent | None:
        """The next engine-neutral event, or ``None`` when drained."""
        while True:
            event = self._quic.next_event()
            if event is None:
                return None
            translate = self._translate.get(type(event))
            if translate is not None:
                translated = translate(event)
                if translated is not None:
                    return translated
            # PingAcknowledged, ProtocolNegotiated, ...: nothing above the engine needs them.

    # --- streams --------------------------------------------------------------------------------
    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The id the next locally opened stream of that kind will get."""
        stream_id: int = self._quic.get_next_available_stream_id(is_unidirectional)
        return stream_id

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` on ``stream_id`` (opening it if it is the next local id)."""
        self._call(self._quic.send_stream_data, stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abort our sending side with RESET_STREAM(``error_code``)."""
        self._call(self._quic.reset_stream, stream_id, error_code)

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending with STOP_SENDING(``error_code``)."""
        self._call(self._quic.stop_stream, stream_id, error_code)

    def consume(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of ``stream_id``; see the subclass for credit."""
        self._reads.consumed(stream_id, n)

    def unread_bytes(self, stream_id: int | None = None) -> int:
        """Delivered but not yet consumed bytes, of one stream or (``None``) the connection."""
        return self._reads.total if stream_id is None else self._reads.unread(stream_id)

    def unread_streams(self) -> dict[int, int]:
        """Every stream holding delivered, unconsumed bytes, with their count (a new dict)."""
        return self._reads.by_stream()

    def send_datagram(self, data: bytes) -> None:
        """Queue one unreliable QUIC DATAGRAM frame."""
        self._call(self._quic.send_datagram_frame, data)

    # --- connection -----------------------------------------------------------------------------
    def close(self, error_code: int = 0, reason: str = "") -> None:
        """Send CONNECTION_CLOSE; ``ConnectionTerminated(remote=False)`` follows after draining."""
        self._closed_locally = True
        self._quic.close(error_code=error_code, reason_phrase=reason)

    @property
    def host_connection_ids(self) -> list[bytes]:
        """Source connection ids currently valid for this connection (routing keys)."""
        # ``host_cid`` is read live: qh3's zero-length-CID workaround sets it on the first
        # datagram, so the endpoint must re-read this after feeding a new connection.
        first: bytes = self._quic.host_cid
        cids = [] if first in self._retired_cids else [first]
        return cids + [c for c in self._issued_cids if c != first]

    @property
    def original_destination_connection_id(self) -> bytes:
        """The destination CID of the client's first Initial (servers: as given at creation)."""
        odcid: bytes = self._quic.original_destination_connection_id
        return odcid

    # --- helpers --------------------------------------------------------------------------------
    def _call(self, operation: Callable[..., None], *args: Any) -> None:
        """Run a library call, turning its assertion/value errors into ``EngineError``."""
        try:
            operation(*args)
        except self._library_errors as exc:
            raise EngineError(f"{self.name}: {operation.__name__}{args[:1]} failed: {exc}") from exc

    def _note_close_on_receive(self) -> None:
        # Both libraries keep their pending close in ``_close_event`` (guarded by a named test).
        # A close that appears while receiving was caused by the peer (its CONNECTION_CLOSE or
        # a violation in its bytes); one that appears on a timer is an idle timeout.
        if not self._closed_locally and self._quic._close_event is not None:
            self._close_seen_on_receive = True

    def _on_handshake_completed(self, event: Any) -> HandshakeCompleted:
        self._handshake_done = True  # keepalive starts with the next datagram received
        return HandshakeCompleted(event.alpn_protocol)

    def _on_stream_data(self, event: Any) -> StreamDataReceived:
        data = event.data if type(event.data) is bytes else bytes(event.data)
        self._reads.delivered(event.stream_id, len(data), event.end_stream)
        return StreamDataReceived(event.stream_id, data, event.end_stream)

    def _on_stream_reset(self, event: Any) -> StreamReset:
        self._reads.delivered(event.stream_id, 0, ended=True)  # no more data will come
        return StreamReset(event.stream_id, event.error_code)

    def _on_cid_issued(self, event: Any) -> ConnectionIdIssued:
        if event.connection_id not in self._issued_cids:
            self._issued_cids.append(event.connection_id)
        return ConnectionIdIssued(event.connection_id)

    def _on_cid_retired(self, event: Any) -> ConnectionIdRetired:
        if event.connection_id in self._issued_cids:
            self._issued_cids.remove(event.connection_id)
        self._retired_cids.add(event.connection_id)
        return ConnectionIdRetired(event.connection_id)

    def _on_terminated(self, event: Any) -> ConnectionTerminated:
        remote = self._close_seen_on_receive and not self._closed_locally
        return ConnectionTerminated(event.error_code, event.reason_phrase, remote)
