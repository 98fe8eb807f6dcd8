"""``WebTransportConfig``: every knob of the libp2p transport, with documented defaults."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .endpoint.retry import RETRY_MODES, RetryMode

if TYPE_CHECKING:
    from .certs import CertManager


@dataclass
class WebTransportConfig:
    """Configuration of :class:`~py_libp2p_webtransport.transport.WebTransportTransport`.

    Windows and limits bound memory: a peer can never make us buffer more than ``max_data``
    per connection (aioquic: also ``max_stream_data`` per stream), and a writer never queues
    more than ``write_buffer_limit`` per stream before it waits for acknowledgements.
    """

    #: QUIC engine: ``"qh3"`` or ``"aioquic"``; ``None`` picks the package default.
    engine: str | None = None
    #: Connection receive window (bytes) advertised to the peer.
    max_data: int = 16 * 1024 * 1024
    #: Per-stream receive window (bytes) advertised to the peer.
    max_stream_data: int = 4 * 1024 * 1024
    #: Bidirectional streams the peer may open at once (browsers fail fast at the limit).
    max_streams_bidi: int = 1024
    #: QUIC idle timeout (seconds).
    idle_timeout: float = 30.0
    #: UDP payload size we send; 1452 fits Ethernet paths with IPv6 headers.
    max_datagram_size: int = 1452
    #: Pace packets (aioquic only; qh3 always paces).
    pacing: bool = True
    #: Dial: bound on the QUIC handshake plus the CONNECT answer (seconds).
    connect_timeout: float = 5.0
    #: Both sides: bound on the Noise handshake (seconds), and on the whole server-side
    #: handshake from the first packet to Noise done.
    handshake_timeout: float = 10.0
    #: Listener: handshakes in progress at once; more new connections are closed at once.
    max_pending_handshakes: int = 64
    #: Listener: QUIC address validation with Retry packets (RFC 9000 §8.1.2). ``"always"``
    #: validates every new client (one extra round trip); ``"under_load"`` only while at least
    #: ``retry_threshold`` QUIC handshakes are in progress, and for sources over their rate of
    #: new connections (instead of dropping their Initials); ``"off"`` never. A Retry costs the
    #: server no state; spoofed sources never get past it.
    retry: RetryMode = "under_load"
    #: Listener, ``retry="under_load"``: QUIC handshakes in progress from which new clients get
    #: a Retry; ``None`` is half of ``max_pending_handshakes``.
    retry_threshold: int | None = None
    #: Per connection: peer-opened streams waiting for ``accept_stream``; a stream that does
    #: not fit is reset (never dropped silently).
    accept_queue_size: int = 256
    #: qh3 only (its credit follows arrival, not reads: README "Backpressure"): unread bytes
    #: per connection above which reception pauses until the application reads; at most
    #: ``max_data``. A reader that takes one chunk per scheduling round can fall behind the pump
    #: by megabytes, so this bounds the receiver's memory, not its speed (64 MiB perf: peak RSS
    #: outliers of 118-136 MB with a budget of 16 MiB, <= 115 MB with 4 MiB, same throughput).
    recv_budget: int = 4 * 1024 * 1024
    #: Per stream: bytes queued in the engine but not yet acknowledged before ``write`` waits.
    write_buffer_limit: int = 1024 * 1024
    #: ``write`` hands data to the engine in chunks of at most this many bytes.
    write_chunk_size: int = 256 * 1024
    #: qh3 only (its receive budget is per connection, see README "Backpressure"): when unread
    #: data has held the connection's receive path paused this long (seconds) with nothing
    #: read by the application meanwhile, the stream holding the most unread data is aborted
    #: (STOP_SENDING + RESET_STREAM; its reader and writer get ``MuxedStreamReset``) so the
    #: others flow again: an explicit error, never a silent drop.
    stall_timeout: float = 30.0
    #: Local close: how long to wait for the session close capsule to be acknowledged
    #: before the QUIC connection is closed (seconds).
    close_linger: float = 0.25
    #: Wall clock (Unix seconds) for certificates: rotation on the listener, validity checks
    #: of the server's certificate on dial. Injectable for tests.
    clock: Callable[[], float] = time.time
    #: Certificate manager; ``None`` derives one from the host key with ``clock``.
    cert_manager: CertManager | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_data",
            "max_stream_data",
            "max_streams_bidi",
            "max_pending_handshakes",
            "accept_queue_size",
            "recv_budget",
            "write_buffer_limit",
            "write_chunk_size",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"WebTransportConfig.{name} must be > 0")
        for name in ("idle_timeout", "connect_timeout", "handshake_timeout", "stall_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WebTransportConfig.{name} must be > 0")
        if self.retry not in RETRY_MODES:
            raise ValueError(
                f"WebTransportConfig.retry must be one of {', '.join(RETRY_MODES)}, "
                f"got {self.retry!r}"
            )
        if self.retry_threshold is not None and self.retry_threshold < 0:
            raise ValueError("WebTransportConfig.retry_threshold must be >= 0")
