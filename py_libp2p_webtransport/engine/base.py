"""The engine-neutral QUIC interface the session layer and the trio endpoint use.

Sans-IO: nothing here reads a clock or touches a socket. ``now`` is always a parameter
(seconds, the same monotonic clock the endpoint uses for everything). Adapters for qh3 and aioquic
live in ``engine/qh3/`` and ``engine/aioquic.py``; each translates its library's events into the
events below, so no layer above ever sees a qh3 or aioquic class. ``QuicEngine`` is the whole
contract: its docstrings are the reference, ``tests/engine`` holds both adapters to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

Address = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True)
class EngineConfig:
    """Everything an engine needs to create one QUIC connection.

    The defaults here are the only ones: ``WebTransportConfig`` takes its engine knobs' defaults
    from this class, and ``WebTransportConfig.engine_config`` is the one mapping between them.

    Windows are receive windows we advertise; ``max_datagram_size`` is the UDP payload size we
    send (1452 suits loopback and Ethernet paths with IPv6); ``pacing`` can only be switched off on
    aioquic (qh3 always paces).
    """

    is_client: bool
    alpn_protocols: tuple[str, ...] = ("h3",)
    # Server: PEM or DER certificate chain (exactly one certificate) and its private key.
    certificate_der: bytes | None = None
    private_key_der: bytes | None = None  # PKCS#8 DER
    # Server: a different certificate (and PKCS#8 key) per negotiated ALPN, e.g. the libp2p TLS
    # certificate for "libp2p" next to the certhash one for "h3"; both P-256 (the signature
    # algorithm is chosen before the ALPN). Client: ``certificate_der``/``private_key_der``, when
    # set, are presented if the server asks for a client certificate.
    alpn_certificates: tuple[tuple[str, bytes, bytes], ...] = ()
    # Server: ask for the client's certificate when one of these ALPNs is negotiated (libp2p
    # mutual TLS). The caller checks it with ``peer_certificate_der()`` before using the
    # connection (neither library can run our check inside the handshake).
    client_auth_alpns: tuple[str, ...] = ()
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
    # Once the handshake is done, send a QUIC PING when nothing arrived for this long (seconds;
    # at most half the idle timeout), so an idle connection outlives the idle timeout (15 s as
    # go-libp2p); None: never.
    keepalive_interval: float | None = 15.0
    max_datagram_frame_size: int = 65536  # > 0: WebTransport clients require datagram support
    # Stateless reset (RFC 9000 §10.3, ``engine/reset_token.py``): with a secret, every
    # connection id we issue is advertised with the token derived from it, so a restarted
    # endpoint holding the same secret can reset its peers' connections. None: random tokens.
    stateless_reset_secret: bytes | None = None
    # qh3 only: stop taking data from the engine while more than this many delivered bytes are
    # unread (not yet consume()d) on the connection; aioquic's windows follow consume() instead.
    # Bounds the receiver's memory, not its speed (see WebTransportConfig.recv_budget).
    recv_budget: int = 4 * 1024 * 1024
    # Debugging aids (``engine/qlog.py``, ``quic_config.py``): one qlog file per connection in
    # this directory; TLS secrets appended to this file in NSS key log format.
    qlog_dir: str | None = None
    keylog_file: str | None = None


# ---- events (past-tense nouns, frozen) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The TLS handshake finished; ``alpn_protocol`` is what was negotiated (``"h3"``,
    ``"libp2p"``)."""

    alpn_protocol: str | None


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    """In-order bytes of a stream (``end_stream``: the peer's FIN follows them).

    Every delivered byte must be ``consume()``d once read or discarded (see ``QuicEngine``).
    """

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
    """One QUIC DATAGRAM frame's payload (RFC 9221)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdIssued:
    """We issued a new source connection id; the endpoint must route it to this connection."""

    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdRetired:
    """The peer retired one of our connection ids: the endpoint must stop routing it here."""

    connection_id: bytes


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection is over (closed by either side, idle timeout, or error).

    ``remote`` is True when the close came from what the peer sent (its CONNECTION_CLOSE or a
    violation in its packets), False for our own close and for idle timeouts.
    """

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
    """A snapshot of one connection's transport counters (for logs, benchmarks, failure dumps)."""

    rtt: float  # smoothed RTT, seconds (0.0 before the first sample)
    cwnd: int  # congestion window, bytes
    bytes_in_flight: int  # sent, neither acknowledged nor declared lost
    bytes_sent: int  # UDP payload bytes handed out by datagrams_to_send()
    bytes_received: int  # UDP payload bytes fed to receive_datagram(s)()
    packets_sent: int  # datagrams handed out (a datagram may coalesce several QUIC packets)
    packets_received: int  # datagrams fed in
    packets_lost: int  # QUIC packets declared lost by loss recovery


class QuicEngine(Protocol):
    """One QUIC connection, wrapped. Both adapters implement exactly this, and nothing public
    besides (``tests/engine/test_contract.py``).

    Rules every caller relies on (both engines, tested in ``tests/engine``):

    * Call ``datagrams_to_send(now)`` after every input *and* after ``consume()``: credit
      (MAX_DATA / MAX_STREAM_DATA) and events held back by qh3's receive budget go out only
      then.
    * ``consume(stream_id, n)`` every delivered byte once it is read or discarded, control
      streams included. On qh3 a connection whose unread bytes exceed ``EngineConfig.recv_budget``
      stops delivering anything (``receive_paused``) until ``consume()`` brings it back under.
    * A new server engine may raise ``EngineError`` from its first ``receive_datagram(s)`` (a
      zero-length-CID client qh3 cannot serve): drop that connection. Read
      ``host_connection_ids`` again after that first datagram: with the workaround the first
      CID is the client's DCID.
    * Library misuse (unknown stream, sending on a stream the peer's limit does not allow yet
      on qh3, which refuses where aioquic queues) raises ``EngineError``; a new stream over the
      peer's limit on qh3 raises its subclass ``StreamLimitReached``.
    """

    #: ``"qh3"`` or ``"aioquic"`` (for logs and for tests that document an engine difference).
    name: str

    # --- input ----------------------------------------------------------------------------------
    def connect(self, addr: Address, now: float) -> None:
        """Client only: start the handshake towards ``addr`` (``EngineError`` on a server)."""

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Feed one UDP payload received from ``addr``; events and datagrams follow."""

    def receive_datagrams(self, datagrams: Iterable[bytes], addr: Address, now: float) -> None:
        """Feed many UDP payloads from one address at once (one call per socket wakeup; qh3
        does this natively, which is cheaper than one call per datagram)."""

    def handle_timer(self, now: float) -> None:
        """Run whatever was due at ``get_timer()``: loss recovery, delayed ACKs, idle timeout."""

    # --- output ---------------------------------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram that may leave now, with its destination; may be empty."""

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next (absolute, the clock of ``now``); None: never."""

    def next_event(self) -> EngineEvent | None:
        """Pop the next event (the classes above, never a library's own), or None."""

    # --- streams --------------------------------------------------------------------------------
    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        """The id the next locally opened stream of that kind gets (it opens on first send)."""

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` (and the FIN with ``end_stream``) on ``stream_id``; opens the next
        local stream. ``StreamLimitReached`` (qh3) when the peer's MAX_STREAMS forbids it."""

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abort our sending side with RESET_STREAM(``error_code``); a no-op once the stream's
        sending side is over (all data acknowledged, already reset)."""

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending with STOP_SENDING(``error_code``)."""

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes queued on ``stream_id`` for write backpressure: aioquic counts bytes not yet
        acknowledged, qh3 bytes not yet sent once (it does not expose unacknowledged bytes)."""

    def consume(self, stream_id: int, n: int) -> None:
        """The application read (or discarded) ``n`` delivered bytes of ``stream_id``: credit may
        return to the peer. More than was delivered raises ``FlowControlError``."""

    def unread_bytes(self, stream_id: int | None = None) -> int:
        """Delivered, not yet consumed bytes of one stream or (``None``) the connection."""

    def unread_streams(self) -> dict[int, int]:
        """Every stream holding delivered, unconsumed bytes, with their count (a new dict).

        For the session's stall breaker, which aborts the stream holding the most."""

    @property
    def receive_paused(self) -> bool:
        """True while unread bytes hold reception back: qh3 takes nothing from the peer while
        ``unread_bytes()`` exceeds ``recv_budget``. Always False on aioquic, whose per-stream
        windows follow ``consume()`` instead."""

    def send_datagram(self, data: bytes) -> None:
        """Queue one unreliable QUIC DATAGRAM frame (RFC 9221)."""

    # --- connection -----------------------------------------------------------------------------
    def close(self, error_code: int = 0, reason: str = "") -> None:
        """Send CONNECTION_CLOSE; ``ConnectionTerminated(remote=False)`` follows after draining.

        Idempotent: a connection already closing or terminated stays as it is."""

    @property
    def host_connection_ids(self) -> list[bytes]:
        """Source connection ids currently valid for this connection (routing keys)."""

    @property
    def original_destination_connection_id(self) -> bytes:
        """The destination CID of the client's first Initial (servers: as given at creation)."""

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf certificate in DER once the handshake received it (a client pins the
        server's certhash with it), else None."""

    def stats(self) -> EngineStats:
        """Transport counters now (RTT, congestion window, bytes and packets)."""
