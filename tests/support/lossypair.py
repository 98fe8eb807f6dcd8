"""Two engines over a simulated lossy link, on a virtual clock: deterministic loss tests.

The link delays every datagram by ``delay`` plus a seeded random part of ``jitter`` (so
datagrams overtake each other), and drops a seeded share of them (``loss``), or bursts of
consecutive ones towards one receiver (``burst``: up to ``burst_length`` datagrams within
``burst_time``, like an overflowing socket buffer). Time jumps straight to the
next arrival or engine timer, so seconds of virtual time cost milliseconds and a stall shows as
a run that reaches its time ``horizon`` (or its step bound) unfinished, never as a hang.

The workload is echoes: the client opens ``streams`` bidirectional streams, writes ``size``
bytes and a FIN on each; the server writes back whatever it receives and ends each stream when
the client's FIN arrives: in the same write (``late_fin=False``) or, like a handler that closes
after its last write went out, with a FIN of its own one step later (``late_fin=True``). Both
sides ``consume()`` what they receive at once.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from support.enginepair import CLIENT_ADDR, SERVER_ADDR, ServerCertificate, initial_dcid

from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    EngineConfig,
    HandshakeCompleted,
    QuicEngine,
    StreamDataReceived,
    create_engine,
)

EngineFactory = Callable[..., QuicEngine]


@dataclass
class Outcome:
    finished: bool
    now: float  # virtual seconds when the run ended
    echoed: int  # bytes back at the client
    expected: int
    dropped: int  # datagrams the link dropped
    steps: int
    timeline: list[str] = field(default_factory=list)  # one line per virtual second


def _default_factory(name: str) -> EngineFactory:
    def make(config: EngineConfig, **kwargs: object) -> QuicEngine:
        return create_engine(name, config, **kwargs)  # type: ignore[arg-type]

    return make


def run_echoes(
    cert: ServerCertificate,
    *,
    engine: str = "qh3",
    factory: EngineFactory | None = None,
    streams: int,
    size: int,
    loss: float,
    seed: int,
    delay: float = 0.0005,
    jitter: float = 0.0001,
    horizon: float = 20.0,
    max_steps: int = 200_000,
    burst: float = 0.0,
    burst_length: tuple[int, int] = (20, 50),
    burst_time: float = 0.005,
    late_fin: bool = False,
) -> Outcome:
    """Echo ``streams`` x ``size`` bytes over the simulated link; see the module docstring."""
    make = factory or _default_factory(engine)
    rnd = random.Random(seed)
    now = 0.0
    client = make(EngineConfig(is_client=True))
    server_config = replace(
        EngineConfig(is_client=False),
        certificate_der=cert.certificate_der,
        private_key_der=cert.private_key_der,
    )
    server: QuicEngine | None = None
    client.connect(SERVER_ADDR, now)
    wire: list[tuple[float, int, bool, bytes]] = []  # (arrival, seq, to_server, datagram)
    seq = dropped = echoed = steps = 0
    # Per receiver: datagrams its current burst still drops, and when the burst ends anyway (a
    # full socket buffer drains within milliseconds; it does not eat a stalled sender's probes).
    burst_left = {True: 0, False: 0}
    burst_until = {True: 0.0, False: 0.0}
    expected = streams * size
    client_done: set[int] = set()
    started = False
    timeline: list[str] = []
    next_report = 1.0
    late_fins: list[int] = []  # streams whose FIN the server sends on the next step

    def transmit(engine: QuicEngine, to_server: bool) -> None:
        nonlocal seq, dropped
        for datagram, _ in engine.datagrams_to_send(now):
            # The handshake itself is left alone: these tests are about the data phase.
            if burst_left[to_server] and now > burst_until[to_server]:
                burst_left[to_server] = 0
            if started and burst and not burst_left[to_server] and rnd.random() < burst:
                burst_left[to_server] = rnd.randint(*burst_length)
                burst_until[to_server] = now + burst_time
            if started and (burst_left[to_server] or rnd.random() < loss):
                burst_left[to_server] = max(0, burst_left[to_server] - 1)
                dropped += 1
                continue
            seq += 1
            arrival = now + delay + rnd.random() * jitter
            heapq.heappush(wire, (arrival, seq, to_server, datagram))

    def drain_client() -> bool:
        nonlocal started, echoed
        while (event := client.next_event()) is not None:
            if isinstance(event, ConnectionTerminated):
                return False
            if isinstance(event, HandshakeCompleted) and not started:
                started = True
                for _ in range(streams):
                    stream_id = client.get_next_available_stream_id()
                    client.send_stream_data(stream_id, b"\x5a" * size, end_stream=True)
            elif isinstance(event, StreamDataReceived):
                client.consume(event.stream_id, len(event.data))
                echoed += len(event.data)
                if event.end_stream:
                    client_done.add(event.stream_id)
        return True

    def drain_server(engine: QuicEngine) -> bool:
        while (event := engine.next_event()) is not None:
            if isinstance(event, ConnectionTerminated):
                return False
            if isinstance(event, StreamDataReceived):
                engine.consume(event.stream_id, len(event.data))
                fin = event.end_stream and not late_fin
                if event.data or fin:
                    engine.send_stream_data(event.stream_id, event.data, fin)
                if event.end_stream and late_fin:
                    late_fins.append(event.stream_id)
        return True

    def outcome(finished: bool) -> Outcome:
        return Outcome(finished, now, echoed, expected, dropped, steps, timeline)

    while now <= horizon and steps < max_steps:
        steps += 1
        if server is not None:
            for stream_id in late_fins:
                server.send_stream_data(stream_id, b"", end_stream=True)
            late_fins.clear()
        if not drain_client() or (server is not None and not drain_server(server)):
            return outcome(False)
        if started and len(client_done) == streams:
            return outcome(echoed == expected)
        transmit(client, True)
        if server is not None:
            transmit(server, False)
        deadlines = [wire[0][0]] if wire else []
        for engine in (client, server):
            if engine is not None and (timer := engine.get_timer()) is not None:
                deadlines.append(timer)
        if not deadlines:
            return outcome(False)
        now = max(now, min(deadlines))
        to_server: list[bytes] = []
        to_client: list[bytes] = []
        while wire and wire[0][0] <= now:
            _, _, towards_server, datagram = heapq.heappop(wire)
            (to_server if towards_server else to_client).append(datagram)
        if to_server:
            if server is None:
                server = make(
                    server_config, original_destination_connection_id=initial_dcid(to_server[0])
                )
            server.receive_datagrams(to_server, CLIENT_ADDR, now)
        if to_client:
            client.receive_datagrams(to_client, SERVER_ADDR, now)
        for engine in (client, server):
            if engine is not None and (timer := engine.get_timer()) is not None and timer <= now:
                engine.handle_timer(now)
        if now >= next_report:
            next_report = now + 1.0
            timeline.append(_snapshot(now, echoed, client, server))
    return outcome(False)


def _snapshot(now: float, echoed: int, client: QuicEngine, server: QuicEngine | None) -> str:
    parts = [f"t={now:.2f}s echoed={echoed}"]
    for name, engine in (("client", client), ("server", server)):
        if engine is None:
            continue
        stats = engine.stats()
        timer = engine.get_timer()
        parts.append(
            f"{name}: cwnd={stats.cwnd} in_flight={stats.bytes_in_flight} "
            f"lost={stats.packets_lost} sent={stats.packets_sent} "
            f"timer_in={(timer - now) if timer is not None else float('nan'):.3f}s"
        )
    return " | ".join(parts)
