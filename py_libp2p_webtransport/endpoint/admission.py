"""Admission: what becomes of a datagram the pump's fast path did not route. Sans-IO.

``Admission.admit(datagram, address, now)`` returns one verdict:

* ``Route(conn)``: it belongs to a connection we have (found by destination connection id);
* ``Accept(original_destination_cid, retry_source_cid)``: a new client, make a server
  connection for it (``retry_source_cid``: the id our Retry gave it, when it came back);
* ``SendRetry(packet)``: answer with this stateless Retry, keep nothing;
* ``Drop(reason)``: ``reason`` names the ``EndpointStats`` counter to count it in.

A datagram for an unknown id creates a connection only if it is a version 1 Initial in a
datagram of at least 1200 bytes, the endpoint listens, its Retry token (if any) is valid, its
source is within its Initial rate, fewer than ``max_half_open`` handshakes are running and, last,
the owner's ``address_verdict`` hook (if any) does not refuse the source (a connection gater, a
resource manager: it returns the ``DropReason`` to refuse with, or None; it is called at most once
per Initial and only when nothing else refused it, so it may reserve resources for the
connection that follows).
Admission owns the state those checks read: the routing table, the per-source token buckets and
the Retry policy (``retry.AddressValidator``). The owner keeps ``half_open`` and ``listening``
up to date. No sockets, no clock: ``now`` is the caller's time in seconds.

The pump looks short headers up in ``routes.get`` itself (one dict lookup, nothing allocated)
and calls ``admit`` only for the rest, which re-reads the header.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeAlias, TypeVar

from .._errors import InvalidRetryToken, MalformedPacket
from ..engine.base import Address
from .quic_header import QUIC_VERSION_1, LongPacketType, is_valid_initial, parse_header
from .retry import AddressValidator, RetryMode

__all__ = [
    "DROP_MESSAGES",
    "HOST_CID_LENGTH",
    "Accept",
    "AddressVerdict",
    "Admission",
    "Drop",
    "DropReason",
    "InitialRateLimiter",
    "Route",
    "RouteTable",
    "UNKNOWN_SHORT",
    "SendRetry",
    "Verdict",
]

HOST_CID_LENGTH = 8  # what both engines issue; short headers are parsed with it
MAX_RATE_SOURCES = 4096  # token buckets kept before full ones are forgotten

DropReason = Literal[
    "dropped_malformed",
    "dropped_unknown_cid",
    "dropped_bad_version",
    "dropped_small_initial",
    "dropped_not_listening",
    "dropped_half_open",
    "dropped_rate_limited",
    "dropped_cid_collision",
    "dropped_invalid_token",
    "dropped_gated",
    "dropped_over_limit",
]

#: The owner's last say on a new connection from an address: None to accept, else why not.
AddressVerdict = Callable[[Address], DropReason | None]

#: What each reason means, for the one log line per reason.
DROP_MESSAGES: dict[DropReason, str] = {
    "dropped_malformed": "malformed datagram",
    "dropped_unknown_cid": "datagram for an unknown connection id",
    "dropped_bad_version": "unsupported QUIC version",
    "dropped_small_initial": "undersized Initial",
    "dropped_not_listening": "Initial on a client-only endpoint",
    "dropped_half_open": "half-open limit reached; Initial",
    "dropped_rate_limited": "Initial rate limit reached",
    "dropped_cid_collision": "Initial colliding with a connection id in use",
    "dropped_invalid_token": "Retry token rejected",
    "dropped_gated": "Initial from an address the connection gater denies",
    "dropped_over_limit": "Initial over the resource manager's limits",
}


class Routable(Protocol):
    """What admission needs of a connection: where its peer is."""

    @property
    def remote_address(self) -> Address: ...


C = TypeVar("C", bound=Routable)


# ---- verdicts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route(Generic[C]):
    conn: C


@dataclass(frozen=True, slots=True)
class Accept:
    original_destination_cid: bytes
    retry_source_cid: bytes | None  # set when the client came back with our Retry's token


@dataclass(frozen=True, slots=True)
class SendRetry:
    packet: bytes


@dataclass(frozen=True, slots=True)
class Drop:
    reason: DropReason
    detail: object = None  # for the log line: the exception, the version, the kind of header


Verdict: TypeAlias = Route[C] | Accept | SendRetry | Drop

# Junk is the common case of a drop: the detail-free verdicts are made once.
UNKNOWN_SHORT = Drop("dropped_unknown_cid", "short header")  # the pump tests for it
_UNKNOWN_LONG = Drop("dropped_unknown_cid", "long header")
_SMALL_INITIAL = Drop("dropped_small_initial")
_NOT_LISTENING = Drop("dropped_not_listening")
_HALF_OPEN = Drop("dropped_half_open")
_COLLISION = Drop("dropped_cid_collision")


# ---- state ------------------------------------------------------------------------------------


class RouteTable(Generic[C]):
    """Connection id -> connection, and each connection's ids (to unroute it at once)."""

    def __init__(self) -> None:
        self._by_cid: dict[bytes, C] = {}
        self._by_conn: dict[C, set[bytes]] = {}
        #: The connection an id routes to, or None: the dict's own ``get`` (the hot path).
        self.get: Callable[[bytes], C | None] = self._by_cid.get

    def __len__(self) -> int:
        return len(self._by_cid)

    def add(self, conn: C, cids: Iterable[bytes]) -> int:
        """Route ``cids`` to ``conn``; return how many already routed elsewhere (kept there)."""
        clashes = 0
        for cid in cids:
            if not cid:
                continue  # a zero-length id routes nothing: its packets carry ours
            owner = self._by_cid.get(cid)
            if owner is not None and owner is not conn:
                clashes += 1
                continue
            self._by_cid[cid] = conn
            self._by_conn.setdefault(conn, set()).add(cid)
        return clashes

    def remove(self, conn: C, cid: bytes) -> None:
        if self._by_cid.get(cid) is conn:
            del self._by_cid[cid]
        owned = self._by_conn.get(conn)
        if owned is not None:
            owned.discard(cid)

    def remove_all(self, conn: C) -> None:
        for cid in self._by_conn.pop(conn, ()):
            if self._by_cid.get(cid) is conn:
                del self._by_cid[cid]

    def routes_to(self, conn: C) -> frozenset[bytes]:
        """The ids that route to ``conn`` (read from the table the datagrams are routed by)."""
        return frozenset(cid for cid, owner in self._by_cid.items() if owner is conn)


class InitialRateLimiter:
    """A token bucket per source: ``rate`` new connections a second, a burst of as many.

    The burst is at least one, so a rate below one a second (0.5: one connection every two
    seconds) still admits. One host cannot take every half-open slot at once. Memory stays
    bounded under a flood from many addresses: past ``MAX_RATE_SOURCES`` buckets, full ones
    are forgotten.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # source -> (tokens, time)

    def allow(self, source: Hashable, now: float) -> bool:
        """Take one token from ``source``'s bucket (False: none left)."""
        rate, burst, buckets = self.rate, self.burst, self._buckets
        tokens, last = buckets.get(source, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if len(buckets) > MAX_RATE_SOURCES:
            for key in [k for k, (t, at) in buckets.items() if t + (now - at) * rate >= burst]:
                del buckets[key]
        if tokens < 1.0:
            buckets[source] = (tokens, now)
            return False
        buckets[source] = (tokens - 1.0, now)
        return True

    def __len__(self) -> int:
        return len(self._buckets)


# ---- the decision -----------------------------------------------------------------------------


class Admission(Generic[C]):
    """The routing table and the new-connection policy of one endpoint (see the module doc)."""

    def __init__(
        self,
        *,
        max_half_open: int,
        initials_per_second: float,
        retry: RetryMode = "off",
        retry_threshold: int | None = None,
        listening: bool = True,
        address_verdict: AddressVerdict | None = None,
    ) -> None:
        self.routes: RouteTable[C] = RouteTable()
        self.address_verdict = address_verdict
        self.rate = InitialRateLimiter(initials_per_second)
        self.max_half_open = max_half_open
        #: Retry policy and token codec (None: never Retry, tokens ignored).
        self.validator: AddressValidator | None = None
        if retry != "off":
            threshold = max_half_open // 2 if retry_threshold is None else retry_threshold
            self.validator = AddressValidator(retry, threshold)
        #: Kept by the owner: accepted connections still handshaking.
        self.half_open = 0
        #: Kept by the owner: False on a client-only or closing endpoint (no new connections).
        self.listening = listening

    def admit(self, data: bytes, addr: Address, now: float) -> Verdict[C]:
        """Route, accept, answer with a Retry or drop the datagram ``data`` from ``addr``."""
        try:
            header = parse_header(data, HOST_CID_LENGTH)
        except MalformedPacket as exc:
            return Drop("dropped_malformed", exc)
        conn = self.routes.get(header.destination_cid)
        if conn is not None:
            if header.packet_type is LongPacketType.INITIAL and conn.remote_address != addr:
                return _COLLISION  # another client chose an id already ours: keep it out
            return Route(conn)
        # Unknown id: only a full-size version 1 Initial may start a connection.
        if not header.is_long:
            return UNKNOWN_SHORT
        if header.version != QUIC_VERSION_1:
            return Drop("dropped_bad_version", header.version)
        if not is_valid_initial(header, len(data)):
            if header.packet_type is LongPacketType.INITIAL:
                return _SMALL_INITIAL
            return _UNKNOWN_LONG
        if not self.listening:
            return _NOT_LISTENING
        odcid, retry_cid = header.destination_cid, None
        validator = self.validator
        if validator is not None:
            try:
                token = validator.validate(data, header, addr, now)
            except InvalidRetryToken as exc:
                return Drop("dropped_invalid_token", exc)
            except MalformedPacket as exc:
                return Drop("dropped_malformed", exc)
            if token is not None:  # the address is validated: no rate charge, no Retry
                odcid, retry_cid = token.original_destination_cid, header.destination_cid
        if retry_cid is None:
            limited = not self.rate.allow(addr[0], now)
            if validator is not None and validator.should_retry(self.half_open, limited):
                return SendRetry(validator.retry_packet(header, addr, now))
            if limited:
                return Drop("dropped_rate_limited", addr[0])
        if self.half_open >= self.max_half_open:
            return _HALF_OPEN
        if self.address_verdict is not None:
            refused = self.address_verdict(addr)
            if refused is not None:
                return Drop(refused, addr[0])
        return Accept(odcid, retry_cid)
