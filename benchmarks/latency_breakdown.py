"""Where the latency of a dial, a ping and a stream goes (not a test; issue 6, item 4).

    python benchmarks/latency_breakdown.py [--engine qh3] [--dials 50] [--pings 1000]
        [--streams 1000] [--profile client|server|none] [--json PATH]

A server (``benchmarks/peer.py serve``) runs in its own process; this process is the client.
The dial is split into phases by wrapping the methods the transport calls between them (no change
to the package): QUIC handshake (until the certificate check), certhash check, CONNECT round trip
(until the Noise stream opens), Noise XX, the swarm's own work after ``transport.dial``, then the
first ``/echo/1.0.0`` stream (multistream-select) and a 1-byte echo. Pings and streams are timed as
in ``compare.py``. With ``--profile client`` the client's dial/stream workloads run under cProfile
and the top functions by own time are printed (``--profile server`` asks ``peer.py`` to profile
itself and print the table on exit, to stderr).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import trio  # noqa: E402
from libp2p.host.ping import ID as PING_PROTOCOL  # noqa: E402
from libp2p.peer.peerinfo import info_from_p2p_addr  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402
from peer import cpu_seconds  # noqa: E402

from py_libp2p_webtransport import conn as wt_conn  # noqa: E402
from py_libp2p_webtransport import endpoint as wt_endpoint  # noqa: E402
from py_libp2p_webtransport import handshake as wt_handshake  # noqa: E402
from py_libp2p_webtransport import transport as wt_transport  # noqa: E402
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL  # noqa: E402
from py_libp2p_webtransport.cli.perf import build_host  # noqa: E402

MARKS: dict[str, float] = {}


def _instrument() -> None:
    """Record the moment the transport reaches each dial phase (client side only)."""
    verify = wt_handshake.verify_server_certificate

    def timed_verify(*args: Any, **kwargs: Any) -> None:
        MARKS.setdefault("quic", time.perf_counter())
        verify(*args, **kwargs)
        MARKS.setdefault("certhash", time.perf_counter())

    wt_handshake.verify_server_certificate = timed_verify  # type: ignore[assignment]
    cls = wt_conn.WebTransportConnection
    open_nowait = cls.open_stream_nowait
    mark_established = cls.mark_established

    def timed_open(self: Any) -> Any:
        MARKS.setdefault("connect", time.perf_counter())
        return open_nowait(self)

    def timed_established(self: Any, *args: Any) -> None:
        MARKS.setdefault("noise", time.perf_counter())
        mark_established(self, *args)

    dial = wt_transport.WebTransportTransport.dial

    async def timed_dial(self: Any, maddr: Any) -> Any:
        MARKS.setdefault("pre_dial", time.perf_counter())
        return await dial(self, maddr)

    wt_transport.WebTransportTransport.dial = timed_dial  # type: ignore[method-assign]
    connect = wt_endpoint.Endpoint.connect

    def timed_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(self, *args, **kwargs)
        MARKS.setdefault("client_hello", time.perf_counter())
        return conn

    wt_endpoint.Endpoint.connect = timed_connect  # type: ignore[method-assign]
    init = wt_transport.WebTransportTransport.__init__

    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        TRANSPORTS.append(self)

    wt_transport.WebTransportTransport.__init__ = recording_init  # type: ignore[method-assign]
    cls.open_stream_nowait = timed_open  # type: ignore[method-assign]
    cls.mark_established = timed_established  # type: ignore[method-assign]


TRANSPORTS: list[Any] = []


def _client_stats() -> dict[str, int]:
    """Pump turns and datagrams of this process's client endpoints (ours only)."""
    totals: dict[str, int] = defaultdict(int)
    for transport in TRANSPORTS:
        for endpoint in transport._client_endpoints.values():
            for key in ("pump_turns", "datagrams_sent", "datagrams_received"):
                totals[key] += getattr(endpoint.stats, key)
    return totals


def _per_op(before: dict[str, int], count: int) -> dict[str, float]:
    after = _client_stats()
    return {f"client_{k}_per_op": (after[k] - before.get(k, 0)) / count for k in after}


PHASES = [
    "pre_dial",
    "client_hello",
    "quic",
    "certhash",
    "connect",
    "noise",
    "swarm",
    "new_stream",
    "echo",
]


def cpu_pair(server_pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of the server."""
    return cpu_seconds(os.getpid()), cpu_seconds(server_pid)


def cpu_per_op(before: tuple[float, float], server_pid: int, count: int) -> dict[str, float]:
    """Microseconds of CPU per operation, each process."""
    after = cpu_pair(server_pid)
    return {
        "client_cpu_us": (after[0] - before[0]) / count * 1e6,
        "server_cpu_us": (after[1] - before[1]) / count * 1e6,
    }


async def client(args: argparse.Namespace, addr: str, server_pid: int) -> dict[str, Any]:
    info = info_from_p2p_addr(Multiaddr(addr))
    engine = args.engine if args.transport == "webtransport" else None
    host = build_host(args.transport, engine=engine)
    out: dict[str, Any] = {}
    profiler = cProfile.Profile() if args.profile == "client" else None
    async with host.run(listen_addrs=[]):
        await host.connect(info)
        net = host.get_network()

        async def disconnect() -> None:
            await net.close_peer(info.peer_id)
            with trio.move_on_after(2.0):
                while net.get_connections(info.peer_id):
                    await trio.sleep(0.01)

        phases: dict[str, list[float]] = defaultdict(list)
        totals = []
        cpu_dial = 0.0, 0.0
        for _ in range(args.dials):
            await disconnect()
            MARKS.clear()
            if profiler:
                profiler.enable()
            c0 = cpu_pair(server_pid)
            t0 = time.perf_counter()
            await net.dial_addr(info.addrs[0], info.peer_id)
            t_swarm = time.perf_counter()
            stream = await host.new_stream(info.peer_id, [ECHO_PROTOCOL])
            t_stream = time.perf_counter()
            await stream.write(b"x")
            await stream.read(1)
            await stream.close()
            t_echo = time.perf_counter()
            c1 = cpu_pair(server_pid)
            cpu_dial = cpu_dial[0] + c1[0] - c0[0], cpu_dial[1] + c1[1] - c0[1]
            if profiler:
                profiler.disable()
            marks = {"start": t0, **MARKS, "swarm": t_swarm, "new_stream": t_stream}
            marks["echo"] = t_echo
            prev = t0
            for name in PHASES:
                at = marks.get(name)
                if at is None:
                    continue
                phases[name].append((at - prev) * 1e3)
                prev = at
            totals.append((t_echo - t0) * 1e3)
        out["dial_ms"] = (
            {}
            if not totals
            else {
                "median_total": statistics.median(totals),
                "client_cpu_us": cpu_dial[0] / max(1, args.dials) * 1e6,
                "server_cpu_us": cpu_dial[1] / max(1, args.dials) * 1e6,
                "phases_median": {k: statistics.median(v) for k, v in phases.items()},
            }
        )

        stream = await host.new_stream(info.peer_id, [PING_PROTOCOL])
        if profiler and args.profile_ping:
            profiler.enable()
        rtts = []
        c0 = cpu_pair(server_pid)
        s0 = _client_stats()
        for _ in range(args.pings):
            payload = os.urandom(32)
            t0 = time.perf_counter()
            await stream.write(payload)
            got = b""
            while len(got) < 32:
                got += await stream.read(32 - len(got))
            rtts.append((time.perf_counter() - t0) * 1e3)
        if profiler and args.profile_ping:
            profiler.disable()
        await stream.close()
        rtts.sort()
        out["ping_ms"] = {
            "median": statistics.median(rtts),
            "p99": rtts[int(len(rtts) * 0.99)],
            **cpu_per_op(c0, server_pid, len(rtts)),
            **_per_op(s0, len(rtts)),
        }

        opens, echoes, closes = [], [], []
        if profiler:
            profiler.enable()
        t_all = time.perf_counter()
        c0 = cpu_pair(server_pid)
        s0 = _client_stats()
        for _ in range(args.streams):
            t0 = time.perf_counter()
            stream = await host.new_stream(info.peer_id, [ECHO_PROTOCOL])
            t1 = time.perf_counter()
            await stream.write(b"x")
            await stream.read(1)
            t2 = time.perf_counter()
            await stream.close()
            t3 = time.perf_counter()
            opens.append((t1 - t0) * 1e3)
            echoes.append((t2 - t1) * 1e3)
            closes.append((t3 - t2) * 1e3)
        total = time.perf_counter() - t_all
        stream_cpu = cpu_per_op(c0, server_pid, max(1, args.streams))
        stream_cpu.update(_per_op(s0, max(1, args.streams)))
        if profiler:
            profiler.disable()
        out["streams"] = (
            {}
            if not opens
            else {
                "seconds": total,
                "open_ms_median": statistics.median(opens),
                "echo_ms_median": statistics.median(echoes),
                "close_ms_median": statistics.median(closes),
                "open_ms_mean": statistics.mean(opens),
                "open_ms_p99": sorted(opens)[int(len(opens) * 0.99)],
                "open_ms_max": max(opens),
                "opens_over_10ms": sum(1 for o in opens if o > 10),
                "echo_ms_mean": statistics.mean(echoes),
                "echo_ms_max": max(echoes),
                "close_ms_mean": statistics.mean(closes),
                **stream_cpu,
            }
        )
    if profiler:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        out["profile"] = text.getvalue()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", default="webtransport", choices=("webtransport", "tcp"))
    parser.add_argument("--engine", default="qh3", choices=("qh3", "aioquic"))
    parser.add_argument("--dials", type=int, default=50)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--profile", choices=("client", "server", "none"), default="none")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--profile-ping", action="store_true", help="profile pings too")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    _instrument()
    env = dict(os.environ)
    if args.profile == "server":
        env["PEER_PROFILE"] = "1"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "peer.py"), "serve", "--transport", args.transport]
        + (["--engine", args.engine] if args.transport == "webtransport" else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert server.stdout is not None
        hello = json.loads(server.stdout.readline())
        result = trio.run(client, args, hello["addr"], int(hello["pid"]))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)
    profile = result.pop("profile", None)
    print(json.dumps(result, indent=2))
    if profile:
        print(profile)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
