"""The trio pump: one UDP socket per listen address, shared by all its QUIC connections.

One pump task does all the I/O (reference/FACTS.md "Pump"): it waits until the socket is
readable, the earliest timer is due, or a connection asked to transmit; then it reads until the
socket would block, feeds each connection all its datagrams at once, drains each touched
connection's events once into its handler, transmits once per connection (batched, GSO where the
kernel has it) and re-arms one timer. There is no task per connection, no await per datagram and
no polling loop.

A short-header datagram for a known connection id is routed here with one dict lookup; every
other datagram goes to ``admission.py``, whose verdict (route, accept, Retry or drop) the pump
applies. Drops are counted in ``Endpoint.stats`` and each kind is logged once; a short header
for an unknown id is answered with a stateless reset when the endpoint has a reset secret
(``stateless_reset.py``). Accepted
connections that do not finish their QUIC handshake within ``handshake_timeout`` are dropped, so
junk cannot hold half-open slots. The indexes kept on connections and their endings are in
``registry.py``; the socket and its send backlog in ``udp_socket.py``.

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

import trio

from .._errors import EngineError, ListenError, MalformedPacket
from ..engine import create_engine
from ..engine.base import Address, EngineConfig
from ..engine.reset_token import MIN_RESET_SIZE
from .admission import (
    DROP_MESSAGES,
    HOST_CID_LENGTH,
    UNKNOWN_SHORT,
    Accept,
    Admission,
    Drop,
    Route,
    SendRetry,
)
from .connection import EndpointConnection, EndpointStats
from .options import EndpointOptions
from .quic_header import parse_header
from .refusal import Refuser
from .registry import ConnectionRegistry
from .retry import AddressValidator
from .stateless_reset import StatelessResetter
from .udp_socket import UdpSocket, open_socket

__all__ = ["Endpoint"]

logger = logging.getLogger(__name__)

RECV_BATCH = 16  # reads per recv call: up to 16 x 64 KiB of GRO buffers (1 MiB resident, not 4)
MAX_DATAGRAMS_PER_TURN = 1024  # then feed, answer and transmit before reading on
MIN_DEFER_YIELDS = 4  # schedule points before a deferred transmit (see _wait) ...
MAX_DEFER_YIELDS = 8  # ... and at most this many while other tasks are still runnable

# New clients refused (by the owner's address verdict, or because ``max_half_open``
# handshakes are running) are answered with CONNECTION_CLOSE(CONNECTION_REFUSED) rather than
# left to time out. The reason phrase says why (the client shows it: "connection closed
# (connection refused: ...)").
REFUSED = {
    "dropped_gated": "connection refused: address denied",
    "dropped_over_limit": "connection refused: over resource limits",
    "dropped_half_open": "connection refused: too many handshakes in progress, retry later",
}

# One turn's datagrams: a list per (connection, source address), in arrival order.
Inbox = dict[tuple[EndpointConnection, Address], list[bytes]]


class Endpoint:
    """A UDP socket with its connections and the pump that drives them.

    Create with ``await Endpoint.bind(host, port, options)``, run ``await endpoint.run()`` in a
    nursery, stop with ``endpoint.close()``.
    """

    def __init__(
        self,
        sock: socket.socket,
        options: EndpointOptions | None = None,
        *,
        on_connection: Callable[[EndpointConnection], None] | None = None,
    ) -> None:
        options = options if options is not None else EndpointOptions()
        self.stats = EndpointStats()
        self._options = options
        self._socket = UdpSocket(sock, options.udp, self.stats)
        self.local_address: Address = self._socket.local_address
        self._server_config = options.server_config
        self._on_connection = on_connection
        self._admission: Admission[EndpointConnection] = Admission(
            max_half_open=options.max_half_open,
            initials_per_second=options.initials_per_second,
            retry=options.retry,
            retry_threshold=options.retry_threshold,
            listening=options.server_config is not None,
            address_verdict=options.address_verdict,
        )
        self._routes = self._admission.routes
        secret = options.stateless_reset_secret
        self._resetter = None if secret is None else StatelessResetter(secret)
        self._refuser = Refuser()
        self._registry = ConnectionRegistry(self._admission, self.stats, self._transmit)
        self._dirty = self._registry.dirty  # (hot: every transmit_soon() adds to it)
        self._strays: list[tuple[EndpointConnection, Address, bytes]] = []  # see _unknown_short
        self._timers = self._registry.timers
        self._deferred = False  # some dirty connection waits for its woken tasks (see _turn)
        self._wait_scope: trio.CancelScope | None = None
        self._closing = False
        self._closed = trio.Event()
        self._running = False
        self._logged: set[str] = set()

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
        try:
            sock = open_socket(infos[0], options.dual_stack, options.udp)
        except OSError as exc:
            raise ListenError(f"cannot bind UDP {host!r} port {port}: {exc}") from exc
        return cls(sock, options, on_connection=on_connection)

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
        self._admission.listening = not self._closing

    @property
    def connections(self) -> frozenset[EndpointConnection]:
        """The live connections (not yet terminated)."""
        return frozenset(self._registry.live)

    @property
    def half_open(self) -> int:
        """Server connections whose handshake has not completed."""
        return self._admission.half_open

    @property
    def address_validator(self) -> AddressValidator | None:
        """The Retry policy and token codec (None: Retry is off)."""
        return self._admission.validator

    @property
    def route_count(self) -> int:
        """Connection ids that route to a connection of this endpoint."""
        return len(self._routes)

    def routes_to(self, conn: EndpointConnection) -> frozenset[bytes]:
        """The connection ids that route to ``conn`` (none once it is retired)."""
        return self._routes.routes_to(conn)

    @property
    def sock(self) -> socket.socket:
        """The UDP socket, to inspect (options, closed or not); only the pump uses it."""
        return self._socket.sock

    @property
    def unsent_datagrams(self) -> int:
        """Datagrams waiting for room in the kernel's send buffer."""
        return self._socket.unsent

    def connect(
        self, addr: Address, config: EngineConfig, engine: str | None = None
    ) -> EndpointConnection:
        """Start a client connection to ``addr`` (a numeric address) over this socket."""
        if self._closing:
            raise EngineError("endpoint is closed")
        if not config.is_client:
            raise ValueError("connect() needs a client config (is_client=True)")
        remote = self._socket.normalize(addr)
        quic = create_engine(engine or self._options.engine, config)
        now = trio.current_time()
        conn = EndpointConnection(quic, remote, self._mark_dirty, trio.Event(), started_at=now)
        quic.connect(remote, now)
        self._registry.add(conn, quic.host_connection_ids)
        self._mark_dirty(conn)
        return conn

    def close(self) -> None:
        """Close every connection (one CONNECTION_CLOSE each), stop the pump, close the socket."""
        if self._closing:
            return
        self._closing = True
        self._admission.listening = False
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
                if self._socket.has_backlog():
                    await trio.lowlevel.wait_writable(self._socket.fileno)
                else:
                    await trio.lowlevel.wait_readable(self._socket.fileno)
            finally:
                self._wait_scope = None
        return True

    def _wake(self) -> None:
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def _mark_dirty(self, conn: EndpointConnection) -> None:
        """Every connection's ``transmit_soon()``: flush it next turn, wake the pump once."""
        if conn.closed:
            return
        if not self._dirty:
            self._wake()
        self._dirty.add(conn)

    def _turn(self, now: float, receive: bool = True) -> None:
        self.stats.pump_turns += 1
        received: set[EndpointConnection] = set()
        if self._socket.has_backlog():
            self._socket.flush()
        if receive:
            self._feed(self._read(now), now, received)
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
                self._registry.fail(conn, now, exc)

    def _read(self, now: float) -> Inbox:
        """Read until the socket would block, routing (or admitting) each datagram."""
        recv, sock = self._socket.udp.recv_batch, self._socket.sock
        route, cid_end = self._routes.get, 1 + HOST_CID_LENGTH
        inbox: Inbox = {}
        received = 0
        while received < MAX_DATAGRAMS_PER_TURN:
            try:
                batch = recv(sock, RECV_BATCH)
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
                # The bulk of traffic: a short header (fixed bit set) with a known id.
                conn = None
                if len(data) >= cid_end and data[0] & 0xC0 == 0x40:
                    conn = route(data[1:cid_end])
                if conn is None:
                    conn = self._admit(data, addr, now)
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
            if self._strays:  # possible stateless resets, for every connection to their source
                for conn, addr, data in self._strays:
                    inbox.setdefault((conn, addr), []).append(data)
                self._strays.clear()
                last_conn = None
            if len(batch) < RECV_BATCH:
                break  # drained (with GRO a drained socket may cost one more, empty, read)
        return inbox

    def _feed(self, inbox: Inbox, now: float, touched: set[EndpointConnection]) -> None:
        for (conn, addr), datagrams in inbox.items():
            if conn.closed:
                continue
            try:
                conn.engine.receive_datagrams(datagrams, addr, now)
            except Exception as exc:
                self._registry.fail(conn, now, exc)
                continue
            conn._received = True
            touched.add(conn)
            if not conn.handshake_completed:
                # An engine may settle its own ids on its first datagram (qh3's zero-length-CID
                # workaround takes the client's pick as ours): route whatever it reports now.
                self._registry.add_routes(conn, conn.engine.host_connection_ids)

    def _run_timers(self, now: float, touched: set[EndpointConnection]) -> None:
        for conn in self._timers.pop_due(now):
            if conn.handshake_overdue(now):
                self._registry.time_out_handshake(conn, now)
                continue
            try:
                conn.fire_timers(now)
            except Exception as exc:
                self._registry.fail(conn, now, exc)
                continue
            touched.add(conn)

    def _service(self, conn: EndpointConnection, now: float, defer: bool = False) -> None:
        """Drain events into the handler, transmit, re-arm the timer; retire if terminated.

        With ``defer`` (a connection that only received) the transmit waits for the next pump
        turn, after the tasks its events woke have run, so their replies ride with the ACKs.
        Never while handshaking: the handshake flight that completes it goes out at once (a
        task closing the connection right away must not get its close sent before it).
        """
        registry = self._registry
        defer = defer and conn.handshake_completed
        for _ in range(4):  # events can appear while transmitting (e.g. after a local close)
            if conn.closed:
                return
            registry.collect_events(conn)
            conn.deliver_events(now)
            if defer and not conn._terminated and not conn.closed:
                self._dirty.add(conn)
                self._deferred = True
                registry.arm_timer(conn)
                return
            self._dirty.discard(conn)  # this transmit covers the handler's writes
            self._transmit(conn, now)
            if conn._terminated:
                registry.retire(conn)
                return
            if not registry.collect_events(conn):
                break
        else:
            self._dirty.add(conn)  # more next turn; the pump does not wait while dirty
        registry.arm_timer(conn)

    def _transmit(self, conn: EndpointConnection, now: float) -> None:
        out = conn.engine.datagrams_to_send(now)
        if out:
            self._socket.send_all(out)

    # ---- admission verdicts ----------------------------------------------------------------

    def _admit(self, data: bytes, addr: Address, now: float) -> EndpointConnection | None:
        """Apply admission's verdict on a datagram the fast path did not route."""
        verdict = self._admission.admit(data, addr, now)
        if isinstance(verdict, Route):
            return verdict.conn
        if isinstance(verdict, Drop):
            if verdict is UNKNOWN_SHORT and len(data) >= MIN_RESET_SIZE:
                return self._unknown_short(data, addr, now)
            self._count_drop(verdict, addr)
            if verdict.reason in REFUSED:
                self._refuse(data, addr, now, verdict)
        elif isinstance(verdict, SendRetry):  # no state kept: the token carries it
            self.stats.retries_sent += 1
            self._log_once("retry", "answering new connections with QUIC Retry (from %s)", addr)
            self._socket.send([verdict.packet], addr)
        else:
            return self._accept(verdict, addr)
        return None

    def _accept(self, accept: Accept, addr: Address) -> EndpointConnection | None:
        """A server connection for a new client."""
        assert self._server_config is not None
        odcid, retry_cid = accept.original_destination_cid, accept.retry_source_cid
        try:
            quic = create_engine(
                self._options.engine,
                self._server_config,
                original_destination_connection_id=odcid,
                retry_source_connection_id=retry_cid,
            )
        except Exception as exc:  # e.g. an unusable certificate: refuse, keep serving
            self.stats.engine_errors += 1
            self._log_once("accept_error", "cannot create a server connection: %r", exc)
            return None
        now = trio.current_time()
        deadline = now + self._options.handshake_timeout
        conn = EndpointConnection(
            quic, addr, self._mark_dirty, trio.Event(), handshake_deadline=deadline, started_at=now
        )
        # The client addresses its Initials to its own pick (after a Retry: the Retry's) until
        # it learns ours.
        self._registry.add(conn, [retry_cid or odcid, *quic.host_connection_ids])
        if self._on_connection is not None:
            conn.call_handler(self._on_connection, conn)
        return conn

    def _refuse(self, data: bytes, addr: Address, now: float, drop: Drop) -> None:
        """The owner refused a new client: tell it at once (``refusal.py``), no TLS work."""
        try:
            header = parse_header(data, HOST_CID_LENGTH)
        except MalformedPacket:
            return
        packet = self._refuser.respond(header, len(data), now, REFUSED[drop.reason])
        if packet is not None:
            self.stats.refusals_sent += 1
            self._socket.send([packet], addr)

    def _unknown_short(self, data: bytes, addr: Address, now: float) -> EndpointConnection | None:
        """A short header for no connection id of ours (RFC 9000 §10.3).

        From a peer we have connections with, it may be that peer's stateless reset (whose id
        is random): each of them gets it, and its engine recognises the token or drops it. From
        anyone else it is a packet of a connection we lost (a restart): answered with a
        stateless reset when we have a secret, counted as an unknown id either way.
        """
        peers = self._registry.by_address.get(addr)
        if peers:
            first, *others = peers
            self._strays.extend((conn, addr, data) for conn in others)
            return first
        self._count_drop(UNKNOWN_SHORT, addr)
        if self._resetter is not None:
            reset = self._resetter.respond(data, now)
            if reset is not None:
                self.stats.stateless_resets_sent += 1
                self._socket.send([reset], addr)
        return None

    def _count_drop(self, drop: Drop, addr: Address) -> None:
        reason = drop.reason
        setattr(self.stats, reason, getattr(self.stats, reason) + 1)
        if reason not in self._logged:
            self._logged.add(reason)
            detail = "" if drop.detail is None else f": {drop.detail}"
            message = "%s from %s%s (logged once; see Endpoint.stats)"
            logger.info(message, DROP_MESSAGES[reason], addr, detail)

    def _shutdown(self, now: float) -> None:
        """Close every connection, send the close frames once, retire all, close the socket."""
        if self._closed.is_set():
            return
        self._closing = True
        self._admission.listening = False
        self._registry.close_all(now)
        self._socket.close()  # after a best-effort flush of the backlog
        self._closed.set()

    def _log_once(self, kind: str, message: str, *args: object) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            logger.info(message, *args)
