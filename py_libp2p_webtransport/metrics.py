"""Prometheus metrics of the transport, in ``prometheus_client``'s default registry.

That is the registry py-libp2p's own metrics use (``new_host(enable_metrics=True)``), so one
scrape shows both. Nothing here runs unless ``WebTransportConfig.metrics`` is on: the glue holds
``None`` instead of a ``Metrics`` and skips every call.

Two kinds of figures:

* counters the code already keeps (``EndpointStats``: datagrams, bytes, drops by reason, Retries,
  handshake timeouts) are read at scrape time by a custom collector: no work per packet;
* events the glue sees once per connection or stream (opened, established, closed, reset, a
  failed handshake, a certificate rotation) update ordinary counters and histograms.

Every figure about a connection or a stream carries a ``transport`` label: ``webtransport``
(``/quic-v1/webtransport``, ``conn.py``) or ``quic`` (``/quic-v1``, ``quic_conn.py``). Figures of
the UDP sockets (``EndpointStats``) have none: one socket serves both.

Per-connection QUIC figures (RTT, congestion window, losses, paused reception) belong to the
engines, which only the trio thread may touch; the scrape runs in the HTTP server's thread. So
``sample()`` (run every ``SAMPLE_INTERVAL`` seconds by each transport, in trio) copies them into
plain numbers the collector reads, and RTT and window go into histograms, never one series per
connection. Labels are bounded: transport, direction, phase, reason, side; never a peer id or
address.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from itertools import accumulate
from typing import TYPE_CHECKING, Any, NamedTuple

import trio
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .endpoint.connection import EndpointStats

if TYPE_CHECKING:
    from .certs import CertManager
    from .endpoint import Endpoint
    from .muxed_conn import MuxedConnection

PREFIX = "py_libp2p_webtransport"
#: Seconds between two samples of the live connections' QUIC figures: a typical scrape
#: interval. A sample touches every connection's engine (2 µs each with warm caches, ~6 µs at
#: 5,000 connections): every 5 s, that was a quarter of an idle node's CPU at 5,000.
SAMPLE_INTERVAL = 15.0

_HANDSHAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RTT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_CWND_BUCKETS = tuple(float(1452 * 2**k) for k in range(1, 14))  # 2 packets .. 8192 packets
#: The ``transport`` label's values (``MuxedConnection.TRANSPORT_LABEL``).
TRANSPORTS = ("webtransport", "quic")

# EndpointStats field -> (metric suffix, help); the dropped_* fields become one metric by reason.
_ENDPOINT_COUNTERS = {
    "datagrams_received": ("udp_datagrams_received", "UDP datagrams received"),
    "datagrams_sent": ("udp_datagrams_sent", "UDP datagrams sent"),
    "bytes_received": ("udp_received_bytes", "UDP payload bytes received"),
    "bytes_sent": ("udp_sent_bytes", "UDP payload bytes sent"),
    "retries_sent": ("retries_sent", "Initials answered with a QUIC Retry"),
    "refusals_sent": (
        "refusals_sent",
        "new connections refused (gater, resource manager, half-open bound) with "
        "CONNECTION_REFUSED",
    ),
    "stateless_resets_sent": (
        "stateless_resets_sent",
        "datagrams of unknown connections answered with a stateless reset",
    ),
    "handshake_timeouts": ("handshake_timeouts", "QUIC handshakes dropped for taking too long"),
    "engine_errors": ("engine_errors", "connections dropped because their QUIC engine failed"),
    "alpn_refused": ("alpn_refused", "handshakes refused with a TLS alert: no ALPN we serve"),
    "send_blocked": ("send_blocked", "times the kernel's send buffer was full"),
    "send_errors": ("send_errors", "datagrams the kernel refused to send"),
}
_DROP_REASONS = tuple(
    f.name.removeprefix("dropped_") for f in fields(EndpointStats) if f.name.startswith("dropped_")
)


class Metrics:
    """The process's metrics: one instance (``get()``), shared by every transport."""

    _instance: Metrics | None = None

    @classmethod
    def get(cls) -> Metrics:
        """The process-wide instance, created (and registered) on first use."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self, registry: Any = REGISTRY) -> None:
        p = PREFIX
        self.connections_opened = Counter(
            f"{p}_connections_opened",
            "Authenticated connections",
            ["transport", "direction"],
            registry=registry,
        )
        self.connections_closed = Counter(
            f"{p}_connections_closed",
            "Authenticated connections that ended, by reason (local, remote, lost)",
            ["transport", "direction", "reason"],
            registry=registry,
        )
        self.connections_open = Gauge(
            f"{p}_connections_open",
            "Authenticated connections open",
            ["transport", "direction"],
            registry=registry,
        )
        self.handshake_seconds = Histogram(
            f"{p}_handshake_duration_seconds",
            "Handshake time per phase: quic (TLS), connect (HTTP/3 CONNECT), noise",
            ["transport", "direction", "phase"],
            buckets=_HANDSHAKE_BUCKETS,
            registry=registry,
        )
        self.handshake_failures = Counter(
            f"{p}_handshake_failures",
            "Failed handshakes by error type (DialTimeout, CerthashMismatch, ...)",
            ["transport", "direction", "reason"],
            registry=registry,
        )
        self.streams_opened = Counter(
            f"{p}_streams_opened",
            "Streams opened",
            ["transport", "direction"],
            registry=registry,
        )
        self.streams_open = Gauge(
            f"{p}_streams_open", "Streams open", ["transport"], registry=registry
        )
        self.streams_reset = Counter(
            f"{p}_streams_reset",
            "Streams reset, by the side that reset",
            ["transport", "side"],
            registry=registry,
        )
        self.certificate_rotations = Counter(
            f"{p}_certificate_rotations",
            "Certificate rotations (each counted once, however many listeners share it)",
            registry=registry,
        )
        # Sampled every SAMPLE_INTERVAL for every open connection: kept as plain bucket counts
        # under the lock the sampler takes once per sample (prometheus_client's Histogram takes
        # a lock per bucket and sum update: 3.4 of the 5.5 µs a connection's sample took) and
        # exported by the collector as ordinary histograms.
        self._rtt = {t: _Buckets(_RTT_BUCKETS) for t in TRANSPORTS}
        self._cwnd = {t: _Buckets(_CWND_BUCKETS) for t in TRANSPORTS}
        # Label children bound once: the per-stream calls below are a lookup and a call.
        self._streams_opened = {
            (t, initiator): self.streams_opened.labels(t, "outbound" if initiator else "inbound")
            for t in TRANSPORTS
            for initiator in (True, False)
        }
        self._streams_open = {t: self.streams_open.labels(t) for t in TRANSPORTS}
        self._resets = {
            (t, local): self.streams_reset.labels(t, "local" if local else "remote")
            for t in TRANSPORTS
            for local in (True, False)
        }
        self._lock = threading.Lock()  # registrations (trio thread) vs scrapes (HTTP thread)
        self._endpoints: weakref.WeakSet[Endpoint] = weakref.WeakSet()
        self._endpoint_totals = dict.fromkeys((f.name for f in fields(EndpointStats)), 0)
        self._cert_managers: weakref.WeakSet[CertManager] = weakref.WeakSet()
        self._connections: weakref.WeakSet[MuxedConnection] = weakref.WeakSet()
        # Per live connection (id): its figures at the last sample; the totals of closed
        # connections. Live plus closed = the counters.
        self._live: dict[int, _Figures] = {}
        self._closed_lost = dict.fromkeys(TRANSPORTS, 0)
        self._closed_stalls = 0
        registry.register(_Collector(self))

    # --- registrations (trio thread) ----------------------------------------------------------

    def watch_endpoint(self, endpoint: Endpoint) -> None:
        """Export ``endpoint.stats``; they stay counted once the endpoint is gone. Once per
        endpoint, however many transports use it (a shared socket)."""
        with self._lock:
            if endpoint in self._endpoints:
                return
            self._endpoints.add(endpoint)
        weakref.finalize(endpoint, self._retire_endpoint, endpoint.stats)

    def _retire_endpoint(self, stats: EndpointStats) -> None:
        with self._lock:
            for name, value in stats.as_dict().items():
                self._endpoint_totals[name] += value

    def watch_certificates(self, manager: CertManager) -> None:
        """Export the seconds until ``manager``'s next rotation, and count its rotations."""
        with self._lock:
            if manager in self._cert_managers:
                return
            self._cert_managers.add(manager)
        manager.subscribe(self.certificate_rotated)

    # --- events (trio thread) -----------------------------------------------------------------

    def connection_established(self, conn: MuxedConnection) -> None:
        transport, direction = conn.TRANSPORT_LABEL, _direction(conn)
        self.connections_opened.labels(transport, direction).inc()
        self.connections_open.labels(transport, direction).inc()
        for phase, seconds in conn.handshake_phases().items():
            self.handshake_seconds.labels(transport, direction, phase).observe(seconds)
        with self._lock:
            self._connections.add(conn)

    def connection_closed(self, conn: MuxedConnection, reason: str) -> None:
        """``conn`` ended (called once, only for connections that were established)."""
        transport, direction = conn.TRANSPORT_LABEL, _direction(conn)
        self.connections_closed.labels(transport, direction, reason).inc()
        self.connections_open.labels(transport, direction).dec()
        lost = conn.quic_stats().packets_lost
        with self._lock:
            self._connections.discard(conn)
            self._live.pop(id(conn), None)
            self._closed_lost[transport] += lost
            self._closed_stalls += conn.stalls_broken

    def stream_opened(self, transport: str, *, initiator: bool) -> None:
        self._streams_opened[transport, initiator].inc()
        self._streams_open[transport].inc()

    def streams_closed(self, transport: str, n: int) -> None:
        """``n`` streams ended (forgotten by their connection, or lost with it)."""
        if n:
            self._streams_open[transport].dec(n)

    def stream_reset(self, transport: str, *, local: bool) -> None:
        self._resets[transport, local].inc()

    def handshake_failed(self, transport: str, direction: str, error: BaseException) -> None:
        self.handshake_failures.labels(transport, direction, type(error).__name__).inc()

    def certificate_rotated(self) -> None:
        self.certificate_rotations.inc()

    async def sample_forever(self, connections: Callable[[], Iterable[MuxedConnection]]) -> None:
        """Every ``SAMPLE_INTERVAL`` seconds, ``sample`` what ``connections()`` returns (a
        transport's open connections; each transport runs one of these in its nursery)."""
        while True:
            await trio.sleep(SAMPLE_INTERVAL)
            self.sample(connections())

    def sample(self, connections: Iterable[MuxedConnection]) -> None:
        """Copy these connections' QUIC figures for the collector (trio thread only)."""
        rows = []
        for conn in connections:
            if conn.is_closed:
                continue
            stats = conn.quic_stats()
            figures = _Figures(
                conn.TRANSPORT_LABEL, stats.packets_lost, conn.stalls_broken, conn.receive_paused
            )
            rows.append((conn, stats.rtt, stats.cwnd, figures))
        live, known = self._live, self._connections
        with self._lock:
            for conn, rtt, cwnd, figures in rows:
                self._rtt[figures.transport].observe(rtt)
                self._cwnd[figures.transport].observe(cwnd)
                # Only while established and open: at close they move to the totals.
                if conn in known:
                    live[id(conn)] = figures

    # --- the scrape (any thread) --------------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        with self._lock:
            endpoints = list(self._endpoints)
            totals = dict(self._endpoint_totals)
            for endpoint in endpoints:
                for name, value in endpoint.stats.as_dict().items():
                    totals[name] += value
            lost = dict(self._closed_lost)
            paused = dict.fromkeys(TRANSPORTS, 0)
            stalls = self._closed_stalls
            for live in self._live.values():
                lost[live.transport] += live.lost
                paused[live.transport] += live.paused
                stalls += live.stalls
            managers = list(self._cert_managers)
            rtt = {t: buckets.copy() for t, buckets in self._rtt.items()}
            cwnd = {t: buckets.copy() for t, buckets in self._cwnd.items()}
        p = PREFIX
        for field, (suffix, help_text) in _ENDPOINT_COUNTERS.items():
            yield _counter(f"{p}_{suffix}", help_text, totals[field])
        drops = CounterMetricFamily(
            f"{p}_packets_dropped",
            "Datagrams dropped before any connection, by reason",
            labels=["reason"],
        )
        for reason in _DROP_REASONS:
            drops.add_metric([reason], totals[f"dropped_{reason}"])
        yield drops
        lost_family = CounterMetricFamily(
            f"{p}_packets_lost", "QUIC packets declared lost", labels=["transport"]
        )
        paused_family = GaugeMetricFamily(
            f"{p}_receive_paused_connections",
            "Connections whose reception is paused by unread data (last sample)",
            labels=["transport"],
        )
        for transport in TRANSPORTS:
            lost_family.add_metric([transport], lost[transport])
            paused_family.add_metric([transport], paused[transport])
        yield lost_family
        yield _counter(f"{p}_stalls_broken", "Streams aborted by the stall breaker", stalls)
        yield paused_family
        yield _histogram(
            f"{p}_rtt_seconds",
            f"Smoothed RTT of the open connections, sampled every {SAMPLE_INTERVAL:g} s",
            rtt,
        )
        yield _histogram(
            f"{p}_congestion_window_bytes",
            f"Congestion window of the open connections, sampled every {SAMPLE_INTERVAL:g} s",
            cwnd,
        )
        if managers:
            yield GaugeMetricFamily(
                f"{p}_certificate_next_rotation_seconds",
                "Seconds until the next certificate rotation",
                value=min(m.seconds_until_rotation() for m in managers),
            )


class _Buckets:
    """A histogram's counts: ``counts[i]`` values fell at or below ``bounds[i]`` and above the
    bound before; the last count is above every bound (+Inf). Not thread-safe: the caller
    holds ``Metrics._lock``."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def copy(self) -> _Buckets:
        other = _Buckets(self.bounds)
        other.counts = list(self.counts)
        other.sum = self.sum
        return other


#: How prometheus_client writes a bucket's bound in its ``le`` label (untyped there).
_le: Callable[[float], str] = floatToGoString


def _histogram(name: str, help_text: str, by_transport: dict[str, _Buckets]) -> Any:
    family = HistogramMetricFamily(name, help_text, labels=["transport"])
    for transport, buckets in by_transport.items():
        cumulative = list(accumulate(buckets.counts))
        les = [_le(bound) for bound in buckets.bounds] + ["+Inf"]
        family.add_metric([transport], list(zip(les, cumulative, strict=True)), buckets.sum)
    return family


class _Figures(NamedTuple):
    """A live connection's figures at its last sample."""

    transport: str
    lost: int
    stalls: int
    paused: bool


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Any]:
        return self._metrics.collect()


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


def _direction(conn: MuxedConnection) -> str:
    return "outbound" if conn.is_initiator else "inbound"
