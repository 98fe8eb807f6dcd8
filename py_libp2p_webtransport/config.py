"""``WebTransportConfig``: every knob of the libp2p transport, with documented defaults.

The QUIC knobs default to ``EngineConfig``'s values and the stall timeout to ``H3Config``'s, so
each knob has one default; ``engine_config`` and ``session_config`` are the only places that
map this configuration onto the layers below.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .endpoint.retry import RETRY_MODES, RetryMode
from .engine.base import EngineConfig
from .session.config import H3Config

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
    max_data: int = EngineConfig.max_data
    #: Per-stream receive window (bytes) advertised to the peer.
    max_stream_data: int = EngineConfig.max_stream_data
    #: Bidirectional streams the peer may open at once (browsers fail fast at the limit).
    max_streams_bidi: int = EngineConfig.max_streams_bidi
    #: QUIC idle timeout (seconds).
    idle_timeout: float = EngineConfig.idle_timeout
    #: Keepalive: a QUIC PING after this many seconds without anything received (at most half
    #: ``idle_timeout``), so idle connections stay up, py<->py included (browsers ping by
    #: themselves); 15 s as go-libp2p. A server's PING waits two slots (``keepalive_slot``)
    #: longer, so a pinging client's PING comes first and the server sends none. ``None``
    #: switches it off.
    keepalive_interval: float | None = EngineConfig.keepalive_interval
    #: Listener: stateless reset (RFC 9000 §10.3). The reset tokens of our connection ids are
    #: derived from the host key, so after a restart (same key, same port) a peer that still
    #: sends on an old connection gets a reset and learns at once that it is gone, instead of
    #: waiting for ``idle_timeout``. ``False``: random tokens, unknown ids are only dropped.
    stateless_reset: bool = True
    #: Listener: the connection gater asked about each new client's address before the QUIC
    #: handshake (``gating.py``); ``None`` uses the swarm's (``swarm.connection_gate``, from
    #: ``ConnectionConfig(allow_list=..., deny_list=...)``). Any object with py-libp2p's
    #: ``ConnectionGate`` interface.
    connection_gate: Any = None
    #: Listener: the resource manager asked for a connection slot (and, with
    #: ``reserve_window_memory``, memory) before the QUIC handshake; ``None`` uses the swarm's
    #: (``new_host(resource_manager=...)``). A ``libp2p.rcmgr.ResourceManager``.
    resource_manager: Any = None
    #: Listener: reserve each connection's receive bound (``max_data`` on aioquic,
    #: ``recv_budget`` on qh3) in the resource manager's memory for the connection's life, and
    #: refuse new connections that do not fit. Off by default: py-libp2p's default manager has
    #: 512 MiB, which would cap a node at 128 (qh3) or 32 (aioquic) connections.
    reserve_window_memory: bool = False
    #: UDP payload size we send; 1452 fits Ethernet paths with IPv6 headers.
    max_datagram_size: int = EngineConfig.max_datagram_size
    #: Pace packets (aioquic only; qh3 always paces).
    pacing: bool = EngineConfig.pacing
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
    recv_budget: int = EngineConfig.recv_budget
    #: Per stream: bytes queued in the engine but not yet acknowledged before ``write`` waits.
    write_buffer_limit: int = 1024 * 1024
    #: ``write`` hands data to the engine in chunks of at most this many bytes.
    write_chunk_size: int = 256 * 1024
    #: qh3 only (its receive budget is per connection, see README "Backpressure"): when unread
    #: data has held the connection's receive path paused this long (seconds) with nothing
    #: read by the application meanwhile, the stream holding the most unread data is aborted
    #: (STOP_SENDING + RESET_STREAM; its reader and writer get ``MuxedStreamReset``) so the
    #: others flow again: an explicit error, never a silent drop.
    stall_timeout: float = H3Config.stall_timeout
    #: Local close: how long to wait for the session close capsule to be acknowledged
    #: before the QUIC connection is closed (seconds).
    close_linger: float = 0.25
    #: Wall clock (Unix seconds) for certificates: rotation on the listener, validity checks
    #: of the server's certificate on dial. Injectable for tests.
    clock: Callable[[], float] = time.time
    #: Certificate manager; ``None`` derives one from the host key with ``clock``.
    cert_manager: CertManager | None = None
    #: Export Prometheus metrics (``metrics.py``) in ``prometheus_client``'s default registry,
    #: the one py-libp2p's metrics use. Off: no metric code runs.
    metrics: bool = False
    #: Write one qlog file per QUIC connection into this directory (created if missing);
    #: ``None`` uses the ``QLOGDIR`` environment variable when set (as quic-go does).
    qlog_dir: str | None = None
    #: Append the TLS secrets of every connection to this file in NSS key log format (for
    #: Wireshark/tshark); ``None`` uses the ``SSLKEYLOGFILE`` environment variable when set.
    #: Anyone holding the file can decrypt the captured traffic: debugging only.
    keylog_file: str | None = None

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
        if self.keepalive_interval is not None and self.keepalive_interval <= 0:
            raise ValueError("WebTransportConfig.keepalive_interval must be > 0 or None")
        if self.retry not in RETRY_MODES:
            raise ValueError(
                f"WebTransportConfig.retry must be one of {', '.join(RETRY_MODES)}, "
                f"got {self.retry!r}"
            )
        if self.retry_threshold is not None and self.retry_threshold < 0:
            raise ValueError("WebTransportConfig.retry_threshold must be >= 0")

    def engine_config(
        self,
        *,
        is_client: bool,
        server_name: str | None = None,
        certificate: tuple[bytes, bytes] | None = None,
        stateless_reset_secret: bytes | None = None,
    ) -> EngineConfig:
        """The engine configuration of one connection: the only mapping of the QUIC knobs.

        ``certificate`` is the server's ``(certificate DER, PKCS#8 key DER)``; clients pass
        ``server_name`` (SNI, None for IP literals) and never verify the chain: the transport
        pins the certhash itself after the handshake. ``stateless_reset_secret``: the host's
        (``engine/reset_token.py``), when ``stateless_reset`` is on.
        """
        certificate_der, private_key_der = certificate if certificate is not None else (None, None)
        return EngineConfig(
            is_client=is_client,
            alpn_protocols=("h3",),
            certificate_der=certificate_der,
            private_key_der=private_key_der,
            server_name=server_name,
            verify_peer=False,
            max_datagram_size=self.max_datagram_size,
            pacing=self.pacing,
            max_data=self.max_data,
            max_stream_data=self.max_stream_data,
            max_streams_bidi=self.max_streams_bidi,
            idle_timeout=self.idle_timeout,
            keepalive_interval=self.keepalive_interval,
            stateless_reset_secret=stateless_reset_secret if self.stateless_reset else None,
            # qh3 can only bound unread data per connection: the budget, at most the window.
            recv_budget=min(self.recv_budget, self.max_data),
            qlog_dir=self.qlog_dir or os.environ.get("QLOGDIR") or None,
            keylog_file=self.keylog_file or os.environ.get("SSLKEYLOGFILE") or None,
        )

    def session_config(self) -> H3Config:
        """The HTTP/3 session layer's configuration (its other knobs keep their defaults)."""
        return H3Config(stall_timeout=self.stall_timeout)
