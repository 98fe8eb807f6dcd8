"""The engine-neutral QUIC interface the session layer and the trio endpoint use.

Sans-IO: nothing here reads a clock or touches a socket. ``now`` is always a parameter
(seconds, the same monotonic clock the endpoint uses for everything). Adapters for qh3 and aioquic
live in ``engine/qh3.py`` and ``engine/aioquic.py``; each translates its library's events into the
events below, so no layer above ever sees a qh3 or aioquic class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

Address = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True)
class EngineConfig:
    """Everything an engine needs to create one QUIC connection.

    Windows are receive windows we advertise; ``max_datagram_size`` is the UDP payload size we
    send (1452 suits loopback and Ethernet paths with IPv6); ``pacing`` can only be switched off on
    aioquic (qh3 always paces).
    """

    is_client: bool
    alpn_protocols: tuple[str, ...] = ("h3",)
    # Server: PEM or DER certificate chain (exactly one certificate) and its private key.
    certificate_der: bytes | None = None
    private_key_der: bytes | None = None  # PKCS#8 DER
    # Client: SNI (None for IP literals) and whether to skip PKI verification. The caller
    # checks the certhash itself with ``peer_certificate_der()`` after the handshake.
    server_name: str | None = None
    verify_peer: bool = False
    max_datagram_size: int = 1452
    pacing: bool = True
    max_data: int = 16 * 1024 * 1024  # connection receive window
    max_stream_data: int = 4 * 1024 * 1024  # per-stream receive window
    max_streams_bidi: int = 1024
    max_streams_uni: int = 128
    idle_timeout: float = 30.0
    max_datagram_frame_size: int = 65536  # > 0: WebTransport clients require datagram support
    # qh3 only: stop taking data from the engine while more than this many delivered bytes are
    # unread (not yet consume()d) on the connection; aioquic's windows follow consume() instead.
    recv_budget: int = 32 * 1024 * 1024
    qlog_dir: str | None = None


# ---- events (past-tense nouns, frozen) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    alpn_protocol: str | None


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer sent RESET_STREAM; ``error_code`` is the raw QUIC application code."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StopSendingReceived:
    """The peer sent STOP_SENDING; ``error_code`` is the raw QUIC application code."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class DatagramReceived:
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdIssued:
    """We issued a new source connection id; the endpoint must route it to this connection."""

    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdRetired:
    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection is over (closed by either side, idle timeout, or error)."""

    error_code: int
    reason: str
    remote: bool = field(default=True)


EngineEvent = (
    HandshakeCompleted
    | StreamDataReceived
    | StreamReset
    | StopSendingReceived
    | DatagramReceived
    | ConnectionIdIssued
    | ConnectionIdRetired
    | ConnectionTerminated
)


@dataclass(frozen=True, slots=True)
class EngineStats:
    rtt: float  # smoothed RTT, seconds
    cwnd: int  # congestion window, bytes
    bytes_in_flight: int
    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int
    packets_lost: int


class QuicEngine(Protocol):
    """One QUIC connection, wrapped. Both adapters implement exactly this."""

    name: str  # "qh3" or "aioquic"

    # --- input ----------------------------------------------------------------------------------
    def connect(self, addr: Address, now: float) -> None:
        """Client only: start the handshake towards ``addr``."""

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def receive_datagrams(self, datagrams: Iterable[bytes], addr: Address, now: float) -> None:
        """Feed many datagrams from one address at once (qh3 does this natively)."""

    def handle_timer(self, now: float) -> None: ...

    # --- output ---------------------------------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def next_event(self) -> EngineEvent | None: ...

    # --- streams --------------------------------------------------------------------------------
    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int: ...

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None: ...

    def reset_stream(self, stream_id: int, error_code: int) -> None: ...

    def stop_stream(self, stream_id: int, error_code: int) -> None: ...

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes queued on ``stream_id`` not yet acknowledged (for write backpressure)."""

    def consume(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of ``stream_id``: credit may now return to the peer."""

    def unread_bytes(self, stream_id: int | None = None) -> int:
        """Delivered, not yet consumed bytes of one stream or (``None``) the connection."""
        ...

    def send_datagram(self, data: bytes) -> None: ...

    # --- connection -----------------------------------------------------------------------------
    def close(self, error_code: int = 0, reason: str = "") -> None: ...

    @property
    def host_connection_ids(self) -> list[bytes]:
        """Source connection ids currently valid for this connection (routing keys)."""

    @property
    def original_destination_connection_id(self) -> bytes: ...

    def peer_certificate_der(self) -> bytes | None:
        """Client: the server's leaf certificate in DER, once the handshake completed."""

    def stats(self) -> EngineStats: ...
