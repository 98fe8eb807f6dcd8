"""The trio UDP driver: one socket per listen address, shared by all its QUIC connections.

One pump task does all the I/O (reference/FACTS.md "Pump"): it waits until the socket is
readable, the earliest timer is due, or a connection asked to transmit; then it reads until the
socket would block, feeds each connection all its datagrams at once, drains each touched
connection's events once into its handler, transmits once per connection (batched, GSO where the
kernel has it) and re-arms one timer. There is no task per connection, no await per datagram and
no polling loop.

Datagrams are routed by destination connection id (``quic_header``). A datagram for an unknown id
creates a connection only if it is a version 1 Initial in a datagram of at least 1200 bytes and
the number of half-open connections is under its bound; everything else is dropped and counted in
``Endpoint.stats`` (each kind logged once). Accepted connections that do not finish their QUIC
handshake within ``handshake_timeout`` are dropped, so junk cannot hold half-open slots.
With ``retry`` on (``retry.py``), such an Initial may instead be answered with a stateless QUIC
Retry, and an Initial carrying a valid Retry token creates the connection (address validated).

Contract with the layer above: whoever owns a connection sets ``conn.handler`` at once (in
``on_connection`` for servers, right after ``connect()`` for clients). Handler callbacks run
inside the pump and must not block. Code outside the pump that writes to an engine, closes it,
or changes the handler's ``get_timer()`` calls ``conn.transmit_soon()``; many calls in one trio
tick cost one transmit.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Protocol

import trio

from .. import _udp
from .._errors import EngineError, InvalidRetryToken, ListenError, MalformedPacket
from ..engine import create_engine
from ..engine.base import (
    Address,
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    EngineConfig,
    EngineEvent,
    HandshakeCompleted,
    QuicEngine,
)
from .deadlines import DeadlineHeap
from .options import EndpointOptions
from .quic_header import (
    QUIC_VERSION_1,
    LongPacketType,
    PacketHeader,
    is_valid_initial,
    parse_header,
)
from .retry import AddressValidator

__all__ = ["ConnectionHandler", "Endpoint", "EndpointConnection", "EndpointStats"]

logger = logging.getLogger(__name__)

SOCKET_BUFFER_SIZE = 4 * 1024 * 1024  # 4 MiB: the 208 KiB default overflows (FACTS.md)
HOST_CID_LENGTH = 8  # what both engines issue; short headers are parsed with it
RECV_BATCH = 16  # reads per recv call: up to 16 x 64 KiB of GRO buffers (1 MiB resident, not 4)
MAX_DATAGRAMS_PER_TURN = 1024  # then feed, answer and transmit before reading on
MIN_DEFER_YIELDS = 4  # schedule points before a deferred transmit (see _wait) ...
MAX_DEFER_YIELDS = 8  # ... and at most this many while other tasks are still runnable
_INTERNAL_ERROR = 0x1  # QUIC INTERNAL_ERROR (RFC 9000 §20.1)
_CONNECTION_REFUSED = 0x2  # QUIC CONNECTION_REFUSED


class ConnectionHandler(Protocol):
    """Implemented by the owner of a connection (the session layer glue)."""

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[EngineEvent], now: float
    ) -> None:
        """The engine produced ``events`` (in order), or datagrams arrived for this connection.

        Called at most once per pump turn (more only if events keep appearing while it
        transmits). ``events`` may be empty after a receive: acknowledgements free send buffer
        space, so this is where blocked writers re-check ``engine.send_buffer_size()``.
        """

    def get_timer(self) -> float | None:
        """An extra deadline of the handler, or None (re-read after every callback and after
        ``transmit_soon()``)."""

    def handle_timer(self, now: float) -> None:
        """The handler's deadline passed."""


@dataclass
class EndpointStats:
    """Counters of one endpoint (never reset)."""

    datagrams_received: int = 0
    datagrams_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    connections_accepted: int = 0
    connections_opened: int = 0
    pump_turns: int = 0
    send_blocked: int = 0  # times the kernel's send buffer was full (we waited, dropped nothing)
    send_errors: int = 0  # datagrams the kernel refused (unreachable...): QUIC sees them as lost
    dropped_malformed: int = 0  # not a QUIC header at all
    dropped_unknown_cid: int = 0  # no connection has this id and it is not an Initial
    dropped_bad_version: int = 0  # long header of a version other than 1 for an unknown id
    dropped_small_initial: int = 0  # an Initial in a datagram under 1200 bytes
    dropped_not_listening: int = 0  # an Initial reached a client-only endpoint
    dropped_half_open: int = 0  # an Initial while max_half_open handshakes were running
    dropped_rate_limited: int = 0  # new-connection Initials beyond one source's rate
    dropped_cid_collision: int = 0  # a new client picked an id that routes to another peer
    dropped_invalid_token: int = 0  # an Initial with a forged/expired/misused Retry token
    retries_sent: int = 0  # Initials answered with a Retry instead of a connection
    handshake_timeouts: int = 0  # accepted connections dropped for not finishing the handshake
    engine_errors: int = 0  # connections dropped because their engine raised

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class EndpointConnection:
    """One QUIC connection on an endpoint; the owner sets ``handler`` right away."""

    def __init__(self, endpoint: Endpoint, engine: QuicEngine, remote_address: Address) -> None:
        self.engine = engine
        self.remote_address = remote_address
        self.handler: ConnectionHandler | None = None
        self.closed = False
        self.closed_event = trio.Event()
        self.handshake_completed = False
        self._endpoint = endpoint
        self._cids: set[bytes] = set()  # routing keys that point at this connection
        self._pending_events: list[EngineEvent] = []  # popped, not yet handed to the handler
        self._terminated = False
        self._is_server = False
        self._received = False  # datagrams arrived this turn: the handler hears of it
        self._handshake_deadline: float | None = None  # server side, until the handshake ends

    def transmit_soon(self) -> None:
        """Flush this connection on the next pump turn (call after engine writes or timer changes).

        Many calls in one trio tick cost one transmit: this only marks the connection dirty and
        wakes the pump once.
        """
        self._endpoint._mark_dirty(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<EndpointConnection {self.engine.name} {self.remote_address} {state}>"


class Endpoint:
    """A UDP socket with its connections and the pump that drives them.

    Create with ``await Endpoint.bind(...)``, run ``await endpoint.run()`` in a nursery, stop with
    ``endpoint.close()``.
    """

    def __init__(
        self,
        sock: socket.socket,
        options: EndpointOptions | None = None,
        *,
        on_connection: Callable[[EndpointConnection], None] | None = None,
    ) -> None:
        options = options if options is not None else EndpointOptions()
        #: Retry policy and token codec (None: never Retry, tokens ignored).
        self.address_validator: AddressValidator | None = None
        if options.retry != "off":
            threshold = options.retry_threshold
            if threshold is None:
                threshold = options.max_half_open // 2
            self.address_validator = AddressValidator(options.retry, threshold)
        self.stats = EndpointStats()
        self._sock = sock
        self._fd = sock.fileno()
        self._udp: ModuleType = options.udp if options.udp is not None else _udp
        self._engine_name = options.engine
        self._server_config = options.server_config
        self._on_connection = on_connection
        self._max_half_open = options.max_half_open
        self._handshake_timeout = options.handshake_timeout
        self._is_ipv6 = sock.family == socket.AF_INET6
        self.local_address: Address = sock.getsockname()
        self._routes: dict[bytes, EndpointConnection] = {}
        self._connections: set[EndpointConnection] = set()
        self._half_open = 0
        self._dirty: set[EndpointConnection] = set()
        self._deferred = False  # some dirty connection waits for its woken tasks (see _turn)
        self._timers: DeadlineHeap[EndpointConnection] = DeadlineHeap()
        self._backlog: list[tuple[list[bytes], Address]] = []  # unsent after EAGAIN, in order
        self._wait_scope: trio.CancelScope | None = None
        self._closing = False
        self._closed = trio.Event()
        self._running = False
        self._logged: set[str] = set()
        # New connections per source address: a token bucket of ``initials_per_second`` tokens
        # a second, as many at most (one host cannot take every half-open slot at once).
        self._initial_rate = options.initials_per_second
        self._initial_buckets: dict[object, tuple[float, float]] = {}  # host -> (tokens, time)

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    async def bind(
        cls,
        host: str,
        port: int,
        options: EndpointOptions | None = None,
        *,
        on_connection: Callable[[EndpointConnection], None] | None = None,
    ) -> Endpoint:
        """Bind a UDP socket on ``host``/``port`` (IPv4 or IPv6 literal or name).

        ``options`` default to a client-only endpoint on the default engine. ``on_connection``
        is called (inside the pump) with each accepted connection; it must set its handler.
        """
        options = options if options is not None else EndpointOptions()
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise ListenError(f"cannot resolve {host!r}: {exc}") from exc
        family, _type, proto, _name, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        try:
            sock.setblocking(False)
            if family == socket.AF_INET6:
                dual = 0 if options.dual_stack else 1
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, dual)
            _set_buffer(sock, socket.SO_RCVBUF, getattr(socket, "SO_RCVBUFFORCE", None))
            _set_buffer(sock, socket.SO_SNDBUF, getattr(socket, "SO_SNDBUFFORCE", None))
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise ListenError(f"cannot bind UDP {host!r} port {port}: {exc}") from exc
        endpoint = cls(sock, options, on_connection=on_connection)
        endpoint._udp.enable_gro(sock)  # both twins split coalesced buffers
        return endpoint

    # ---- public API ------------------------------------------------------------------------

    @property
    def server_config(self) -> EngineConfig | None:
        """The configuration new server connections get (None: client-only endpoint)."""
        return self._server_config

    @server_config.setter
    def server_config(self, config: EngineConfig) -> None:
        # Certificate rotation (listener): connections accepted from now on use ``config``.
        if config.is_client:
            raise ValueError("server_config must have is_client=False")
        self._server_config = config

    @property
    def connections(self) -> frozenset[EndpointConnection]:
        """The live connections (not yet terminated)."""
        return frozenset(self._connections)

    @property
    def half_open(self) -> int:
        """Server connections whose handshake has not completed."""
        return self._half_open

    def connect(
        self, addr: Address, config: EngineConfig, engine: str | None = None
    ) -> EndpointConnection:
        """Start a client connection to ``addr`` (a numeric address) over this socket."""
        if self._closing:
            raise EngineError("endpoint is closed")
        if not config.is_client:
            raise ValueError("connect() needs a client config (is_client=True)")
        remote = self._normalize(addr)
        quic = create_engine(engine or self._engine_name, config)
        conn = EndpointConnection(self, quic, remote)
        quic.connect(remote, trio.current_time())
        self._connections.add(conn)
        self._add_routes(conn, quic.host_connection_ids)
        self.stats.connections_opened += 1
        self._mark_dirty(conn)
        return conn

    def close(self) -> None:
        """Close every connection (one CONNECTION_CLOSE each), stop the pump, close the socket."""
        if self._closing:
            return
        self._closing = True
        if self._running:
            self._wake()
        else:
            self._shutdown(trio.current_time())

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def run(self) -> None:
        """The pump. Run it in a nursery; returns after ``close()``."""
        if self._running:
            raise RuntimeError("the pump is already running")
        self._running = True
        skipped = False
        try:
            while not self._closing:
                polled = await self._wait()
                if self._closing:
                    break
                # A transmit-only turn reads nothing, but never twice in a row: writers that
                # keep the pump dirty must not keep acknowledgements unread.
                receive = polled or skipped
                skipped = not receive
                self._turn(trio.current_time(), receive=receive)
        finally:
            self._running = False
            self._shutdown(trio.current_time())

    # ---- the pump --------------------------------------------------------------------------

    async def _wait(self) -> bool:
        """Return when the socket is readable (or writable with a backlog), a timer is due, or
        a connection was marked dirty. False when it returned for dirty connections without
        looking at the socket: that turn only transmits (a read would almost always find
        nothing; anything that did arrive is read on the next wait, which returns at once)."""
        if self._dirty:
            await trio.lowlevel.checkpoint()  # let writers of this tick finish first
            if self._deferred:
                # Let the tasks woken by the deferred connections' events run until they block.
                # A reply takes a few schedule points (py-libp2p's NetStream lock, ours), and
                # trio runs each batch of ready tasks in random order: yield a few times, more
                # while tasks are queued, within a bound (a busy task must not starve the pump).
                self._deferred = False
                yields = 1
                while yields < MAX_DEFER_YIELDS and (
                    yields < MIN_DEFER_YIELDS or trio.lowlevel.current_statistics().tasks_runnable
                ):
                    await trio.lowlevel.checkpoint()
                    yields += 1
            return False
        deadline = self._timers.next_deadline()
        with trio.CancelScope(deadline=deadline if deadline is not None else float("inf")) as cs:
            self._wait_scope = cs
            try:
                if self._backlog:
                    await trio.lowlevel.wait_writable(self._fd)
                else:
                    await trio.lowlevel.wait_readable(self._fd)
            finally:
                self._wait_scope = None
        return True

    def _wake(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def _mark_dirty(self, conn: EndpointConnection) -> None:
        if conn.closed:
            return
        if not self._dirty:
            self._wake()
        self._dirty.add(conn)

    def _turn(self, now: float, receive: bool = True) -> None:
        self.stats.pump_turns += 1
        received: set[EndpointConnection] = set()
        if self._backlog:
            self._flush_backlog()
        if receive:
            self._receive(now, received)
        touched: set[EndpointConnection] = set()
        self._run_timers(now, touched)
        # Connections that only received this turn transmit on the next one, after the tasks
        # their events woke have run (the pump's wait yields once while anything is dirty):
        # an answer written by those tasks then leaves in the same packet as the ACK, instead
        # of an ACK-only packet now and the answer in a second one (which also woke the peer
        # twice). Timers and writers' transmit_soon() are served at once, as before.
        deferred = received - touched - self._dirty
        touched |= received
        touched |= self._dirty
        self._dirty.clear()
        for conn in touched:
            try:
                self._service(conn, now, conn in deferred)
            except Exception as exc:
                self._fail(conn, now, exc)

    def _receive(self, now: float, touched: set[EndpointConnection]) -> None:
        recv = self._udp.recv_batch
        # One list of datagrams per (connection, source address), in arrival order.
        inbox: dict[tuple[EndpointConnection, Address], list[bytes]] = {}
        received = 0
        while received < MAX_DATAGRAMS_PER_TURN:
            try:
                batch = recv(self._sock, RECV_BATCH)
            except OSError as exc:
                # e.g. ICMP errors reported on the socket: nothing to read, keep pumping.
                self._log_once("recv_error", "UDP receive error (logged once): %s", exc)
                break
            if not batch:
                break
            received += len(batch)
            self.stats.datagrams_received += len(batch)
            nbytes = 0
            last_conn: EndpointConnection | None = None
            last_addr: Address | None = None
            last_list: list[bytes] = []
            for data, addr in batch:
                nbytes += len(data)
                conn = self._route(data, addr, now)
                if conn is None:
                    continue
                # Runs of datagrams from one peer are the common case: skip the dict then.
                if conn is last_conn and (addr is last_addr or addr == last_addr):
                    last_list.append(data)
                    continue
                last_list = inbox.setdefault((conn, addr), [])
                last_list.append(data)
                last_conn, last_addr = conn, addr
            self.stats.bytes_received += nbytes
            if len(batch) < RECV_BATCH:
                break  # drained (with GRO a drained socket may cost one more, empty, read)
        for (conn, addr), datagrams in inbox.items():
            if conn.closed:
                continue
            try:
                conn.engine.receive_datagrams(datagrams, addr, now)
            except Exception as exc:
                self._fail(conn, now, exc)
                continue
            conn._received = True
            touched.add(conn)
            if not conn.handshake_completed:
                # An engine may settle its own ids on its first datagram (qh3's zero-length-CID
                # workaround takes the client's pick as ours): route whatever it reports now.
                self._add_routes(conn, conn.engine.host_connection_ids)

    def _run_timers(self, now: float, touched: set[EndpointConnection]) -> None:
        for conn in self._timers.pop_due(now):
            hs = conn._handshake_deadline
            if hs is not None and hs <= now and not conn.handshake_completed:
                # A handshake that never finishes (garbage Initial, vanished client) frees its
                # half-open slot; the engine alone may never time out without a valid packet.
                self._drop_half_open(conn, now)
                continue
            engine_timer = conn.engine.get_timer()
            if engine_timer is not None and engine_timer <= now:
                try:
                    conn.engine.handle_timer(now)
                except Exception as exc:
                    self._fail(conn, now, exc)
                    continue
            handler = conn.handler
            if handler is not None:
                handler_timer = handler.get_timer()
                if handler_timer is not None and handler_timer <= now:
                    self._call_handler(conn, handler.handle_timer, now)
            touched.add(conn)

    def _service(self, conn: EndpointConnection, now: float, defer: bool = False) -> None:
        """Drain events into the handler, transmit, re-arm the timer; retire if terminated.

        With ``defer`` (a connection that only received) the transmit waits for the next pump
        turn, after the tasks its events woke have run, so their replies ride with the ACKs.
        Never while handshaking: the handshake flight that completes it goes out at once (a
        task closing the connection right away must not get its close sent before it).
        """
        defer = defer and conn.handshake_completed
        for _ in range(4):  # events can appear while transmitting (e.g. after a local close)
            if conn.closed:
                return
            self._collect_events(conn)
            self._deliver_events(conn, now)
            if defer and not conn._terminated and not conn.closed:
                self._dirty.add(conn)
                self._deferred = True
                self._arm_timer(conn)
                return
            self._dirty.discard(conn)  # this transmit covers the handler's writes
            self._transmit(conn, now)
            if conn._terminated:
                self._retire(conn)
                return
            if not self._collect_events(conn):
                break
        else:
            self._dirty.add(conn)  # more next turn; the pump does not wait while dirty
        self._arm_timer(conn)

    def _collect_events(self, conn: EndpointConnection) -> bool:
        """Pop the engine's events into ``conn._pending_events``, updating routes on the way."""
        engine = conn.engine
        pending = conn._pending_events
        found = False
        event = engine.next_event()
        while event is not None:
            found = True
            pending.append(event)
            if isinstance(event, ConnectionIdIssued):
                self._add_routes(conn, [event.connection_id])
            elif isinstance(event, ConnectionIdRetired):
                self._remove_route(conn, event.connection_id)
            elif isinstance(event, HandshakeCompleted):
                self._handshake_done(conn)
            elif isinstance(event, ConnectionTerminated):
                conn._terminated = True
            event = engine.next_event()
        return found

    def _deliver_events(self, conn: EndpointConnection, now: float) -> None:
        handler = conn.handler
        if handler is None:
            return  # without a handler yet, the events wait for it
        if not conn._pending_events and not conn._received:
            return
        conn._received = False
        events = conn._pending_events
        conn._pending_events = []
        self._call_handler(conn, handler.handle_engine_events, conn, events, now)

    def _call_handler(
        self, conn: EndpointConnection, fn: Callable[..., None], *args: object
    ) -> None:
        """A failing handler closes its own connection, never the endpoint."""
        try:
            fn(*args)
        except Exception:
            logger.exception("connection handler failed; closing %r", conn)
            conn.engine.close(_INTERNAL_ERROR, "handler error")

    def _transmit(self, conn: EndpointConnection, now: float) -> None:
        out = conn.engine.datagrams_to_send(now)
        if not out:
            return
        # Consecutive datagrams to one address go out in one batch.
        run: list[bytes] = []
        run_addr = out[0][1]
        for data, addr in out:
            if addr != run_addr:
                self._send(run, run_addr)
                run, run_addr = [], addr
            run.append(data)
        self._send(run, run_addr)

    def _send(self, datagrams: list[bytes], addr: Address) -> None:
        if self._backlog:  # keep order: queue behind what the kernel refused earlier
            self._backlog.append((datagrams, addr))
            return
        sent = self._send_now(datagrams, addr)
        if sent < len(datagrams):
            self._backlog.append((datagrams[sent:], addr))

    def _send_now(self, datagrams: list[bytes], addr: Address) -> int:
        try:
            sent: int = self._udp.send_batch(self._sock, datagrams, addr)
        except OSError as exc:
            # Unreachable peer or similar: QUIC recovers (or times out) as for a lost packet.
            self.stats.send_errors += len(datagrams)
            self._log_once("send_error", "UDP send error to %s (logged once): %s", addr, exc)
            return len(datagrams)
        self.stats.datagrams_sent += sent
        self.stats.bytes_sent += sum(len(d) for d in datagrams[:sent])
        if sent < len(datagrams):
            self.stats.send_blocked += 1
        return sent

    def _flush_backlog(self) -> None:
        while self._backlog:
            datagrams, addr = self._backlog[0]
            sent = self._send_now(datagrams, addr)
            if sent < len(datagrams):
                self._backlog[0] = (datagrams[sent:], addr)
                return
            self._backlog.pop(0)

    def _arm_timer(self, conn: EndpointConnection) -> None:
        deadline = conn.engine.get_timer()
        if conn._handshake_deadline is not None and not conn.handshake_completed:
            if deadline is None or conn._handshake_deadline < deadline:
                deadline = conn._handshake_deadline
        handler = conn.handler
        if handler is not None:
            extra = handler.get_timer()
            if extra is not None and (deadline is None or extra < deadline):
                deadline = extra
        self._timers.set(conn, deadline)

    # ---- routing ---------------------------------------------------------------------------

    def _route(self, data: bytes, addr: Address, now: float) -> EndpointConnection | None:
        """The connection a datagram belongs to, a new one for a valid Initial, or None."""
        # Fast path for the bulk of traffic: a short header (fixed bit set) with a known id.
        if len(data) > HOST_CID_LENGTH and data[0] & 0xC0 == 0x40:
            conn = self._routes.get(data[1 : 1 + HOST_CID_LENGTH])
            if conn is not None:
                return conn
        try:
            header = parse_header(data, HOST_CID_LENGTH)
        except MalformedPacket as exc:
            self._drop("dropped_malformed", "malformed datagram from %s: %s", addr, exc)
            return None
        conn = self._routes.get(header.destination_cid)
        if conn is not None:
            if header.packet_type is LongPacketType.INITIAL and conn.remote_address != addr:
                # Another client chose an id already ours: it must not reach that connection.
                self._drop("dropped_cid_collision", "Initial from %s collides with a CID", addr)
                return None
            return conn
        if not header.is_long:
            self._drop("dropped_unknown_cid", "short-header datagram for unknown CID from %s", addr)
            return None
        if header.version != QUIC_VERSION_1:
            self._drop("dropped_bad_version", "QUIC version %s from %s", header.version, addr)
            return None
        if not is_valid_initial(header, len(data)):
            if header.packet_type is LongPacketType.INITIAL:
                self._drop("dropped_small_initial", "undersized Initial from %s", addr)
            else:
                self._drop("dropped_unknown_cid", "long header for unknown CID from %s", addr)
            return None
        if self._server_config is None or self._closing:
            self._drop("dropped_not_listening", "Initial from %s on a client endpoint", addr)
            return None
        odcid, retry_cid = header.destination_cid, None
        validator = self.address_validator
        if validator is not None:
            try:
                token = validator.validate(data, header, addr, now)
            except InvalidRetryToken as exc:
                self._drop("dropped_invalid_token", "Retry token from %s rejected: %s", addr, exc)
                return None
            except MalformedPacket as exc:
                self._drop("dropped_malformed", "malformed Initial from %s: %s", addr, exc)
                return None
            if token is not None:  # the address is validated: no rate charge, no Retry
                odcid, retry_cid = token.original_destination_cid, header.destination_cid
        if retry_cid is None:
            limited = not self._initial_allowed(addr[0], now)
            if validator is not None and validator.should_retry(self._half_open, limited):
                self._send_retry(validator, header, addr, now)
                return None
            if limited:
                self._drop("dropped_rate_limited", "Initial rate limit reached for %s", addr[0])
                return None
        if self._half_open >= self._max_half_open:
            self._drop("dropped_half_open", "half-open limit reached; Initial from %s", addr)
            return None
        return self._accept(odcid, addr, retry_cid)

    def _send_retry(
        self, validator: AddressValidator, header: PacketHeader, addr: Address, now: float
    ) -> None:
        """Answer an Initial with a Retry (no state kept: the token carries it)."""
        self.stats.retries_sent += 1
        self._log_once("retry", "answering new connections with QUIC Retry (from %s)", addr)
        self._send([validator.retry_packet(header, addr, now)], addr)

    def _initial_allowed(self, host: object, now: float) -> bool:
        """Take one token from ``host``'s bucket (False: none left)."""
        rate = self._initial_rate
        buckets = self._initial_buckets
        tokens, last = buckets.get(host, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if len(buckets) > 4096:
            # Bounded memory under a flood from many addresses: forget full buckets.
            for key in [k for k, (t, at) in buckets.items() if t + (now - at) * rate >= rate]:
                del buckets[key]
        if tokens < 1.0:
            buckets[host] = (tokens, now)
            return False
        buckets[host] = (tokens - 1.0, now)
        return True

    def _accept(
        self, odcid: bytes, addr: Address, retry_cid: bytes | None = None
    ) -> EndpointConnection | None:
        """A server connection for a new client; ``retry_cid``: the id our Retry gave it."""
        assert self._server_config is not None
        try:
            quic = create_engine(
                self._engine_name,
                self._server_config,
                original_destination_connection_id=odcid,
                retry_source_connection_id=retry_cid,
            )
        except Exception as exc:  # e.g. an unusable certificate: refuse, keep serving
            self.stats.engine_errors += 1
            self._log_once("accept_error", "cannot create a server connection: %r", exc)
            return None
        conn = EndpointConnection(self, quic, addr)
        conn._is_server = True
        conn._handshake_deadline = trio.current_time() + self._handshake_timeout
        self._connections.add(conn)
        self._half_open += 1
        self.stats.connections_accepted += 1
        # The client addresses its Initials to its own pick (after a Retry: the Retry's) until
        # it learns ours.
        self._add_routes(conn, [retry_cid or odcid, *quic.host_connection_ids])
        if self._on_connection is not None:
            self._call_handler(conn, self._on_connection, conn)
        return conn

    def _fail(self, conn: EndpointConnection, now: float, exc: Exception) -> None:
        """An engine raised: that connection ends (its handler hears why), the endpoint goes on."""
        self.stats.engine_errors += 1
        logger.warning("QUIC engine failed on %r: %r; dropping the connection", conn, exc)
        try:
            conn.engine.close(_INTERNAL_ERROR, "engine error")
        except Exception:
            pass
        if not conn._terminated:
            conn._terminated = True
            reason = f"engine error: {exc!r}"
            conn._pending_events.append(ConnectionTerminated(_INTERNAL_ERROR, reason, remote=False))
        self._deliver_events(conn, now)
        self._retire(conn)

    def _drop_half_open(self, conn: EndpointConnection, now: float) -> None:
        self.stats.handshake_timeouts += 1
        try:
            conn.engine.close(_CONNECTION_REFUSED, "handshake timeout")
            self._transmit(conn, now)
            self._collect_events(conn)
        except Exception:  # an engine that never saw a valid packet may have no path yet
            logger.debug("closing half-open %r", conn, exc_info=True)
        if not conn._terminated:
            conn._pending_events.append(ConnectionTerminated(0, "handshake timeout", remote=False))
        self._deliver_events(conn, now)
        self._retire(conn)

    def _handshake_done(self, conn: EndpointConnection) -> None:
        if not conn.handshake_completed:
            conn.handshake_completed = True
            if conn._is_server:
                self._half_open -= 1

    def _add_routes(self, conn: EndpointConnection, cids: list[bytes]) -> None:
        for cid in cids:
            if not cid:
                continue  # a zero-length id routes nothing: its packets carry ours
            owner = self._routes.get(cid)
            if owner is not None and owner is not conn:
                self._log_once("cid_clash", "connection id clash; keeping the first owner")
                continue
            self._routes[cid] = conn
            conn._cids.add(cid)

    def _remove_route(self, conn: EndpointConnection, cid: bytes) -> None:
        if self._routes.get(cid) is conn:
            del self._routes[cid]
        conn._cids.discard(cid)

    def _retire(self, conn: EndpointConnection) -> None:
        """Forget a terminated connection: routes, timer, half-open slot; set its event."""
        if conn.closed:
            return
        if conn._is_server and not conn.handshake_completed:
            self._half_open -= 1
        for cid in list(conn._cids):
            self._remove_route(conn, cid)
        conn.closed = True
        self._timers.discard(conn)
        self._connections.discard(conn)
        self._dirty.discard(conn)
        conn.closed_event.set()

    def _shutdown(self, now: float) -> None:
        """Close every connection, send the close frames once, retire all, close the socket."""
        if self._closed.is_set():
            return
        self._closing = True
        for conn in list(self._connections):
            conn.engine.close(0, "endpoint closed")
            try:
                self._collect_events(conn)
                self._deliver_events(conn, now)
                self._transmit(conn, now)
                self._collect_events(conn)
                self._deliver_events(conn, now)
            except Exception:  # the socket may be unusable; nothing else to do
                logger.debug("error while closing %r", conn, exc_info=True)
            if not conn._terminated and conn.handler is not None:
                final = [ConnectionTerminated(0, "endpoint closed", remote=False)]
                self._call_handler(conn, conn.handler.handle_engine_events, conn, final, now)
            self._retire(conn)
        if self._backlog:
            self._flush_backlog()  # best effort; the socket closes now
            self._backlog.clear()
        self._sock.close()
        self._closed.set()

    # ---- helpers ---------------------------------------------------------------------------

    def _normalize(self, addr: Address) -> Address:
        """The form ``recvfrom`` reports for ``addr`` on our socket (so paths compare equal)."""
        host, port = addr[0], addr[1]
        if not self._is_ipv6:
            return (host, port)
        if ":" not in host:
            host = "::ffff:" + host
        if len(addr) == 4:
            return addr
        return (host, port, 0, 0)

    def _drop(self, counter: str, message: str, *args: object) -> None:
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        self._log_once(counter, message + " (logged once; see Endpoint.stats)", *args)

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            logger.info(message, *args)


def _set_buffer(sock: socket.socket, option: int, force: int | None) -> None:
    """Ask for 4 MiB; the privileged FORCE variant ignores the sysctl cap where we may use it."""
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_SIZE)
            return
        except OSError:
            pass
    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_SIZE)
