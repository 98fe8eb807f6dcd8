"""Worker process of ``benchmarks/compare.py`` (not meant to be run by hand, but it can be).

``peer.py serve --transport T [--engine E]`` starts a host serving perf, echo and ping on
loopback and prints one JSON line ``{"addr": ..., "pid": ..., "implementation": ...}`` (or
``{"unavailable": reason}`` and exit status 3 when the transport cannot be built); it serves
until its stdin closes.

``peer.py client --transport T [--engine E] --addr ADDR --server-pid PID [sizes]`` connects,
runs the workloads one after the other, each bounded by ``--timeout``, and prints one JSON
object: ``{"implementation": ..., "workloads": {name: figures or {"error": message}}}``. CPU
time and peak RSS of both processes come from ``/proc`` (the server's PID is given); peak RSS is
reset (``/proc/PID/clear_refs``) before each transfer so it is that transfer's peak.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trio  # noqa: E402
from libp2p.abc import IHost  # noqa: E402
from libp2p.host.ping import ID as PING_PROTOCOL  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from py_libp2p_webtransport.apps.perf import run_perf  # noqa: E402
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL, register_handlers  # noqa: E402
from py_libp2p_webtransport.cli.perf import build_host  # noqa: E402

LISTEN = {
    "webtransport": "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
    "libp2p-webtransport": "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
    "quic": "/ip4/127.0.0.1/udp/0/quic-v1",
    "quic-v1": "/ip4/127.0.0.1/udp/0/quic-v1",
    "tcp": "/ip4/127.0.0.1/tcp/0",
}
MiB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def implementation() -> str:
    """Which twins our package loaded in this process ("cython" or "python")."""
    import py_libp2p_webtransport  # noqa: PLC0415

    return str(py_libp2p_webtransport.IMPLEMENTATION)


# --- /proc readings ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    """VmHWM of ``pid`` in MB (10**6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmHWM for {pid}")


def rss_mb(pid: int) -> float:
    """Current VmRSS of ``pid`` in MB (10**6 bytes)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for {pid}")


def reset_peak_rss(pid: int) -> bool:
    """Start a new peak-RSS window for ``pid``; False when the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- server --------------------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> int:
    try:
        host = build_host(
            args.transport,
            engine=args.engine,
            metrics=args.metrics,
            listen_addrs=[Multiaddr(LISTEN[args.transport])],
        )
    except ImportError as exc:
        print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 3
    listen = [Multiaddr(LISTEN[args.transport])]
    async with host.run(listen_addrs=listen):
        register_handlers(host)
        addr = next(a for a in host.get_addrs() if "127.0.0.1" in str(a))
        info = {"addr": str(addr), "pid": os.getpid(), "implementation": implementation()}
        print(json.dumps(info), flush=True)
        # Serve until the parent closes our stdin (or kills us).
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
    return 0


# --- client workloads ----------------------------------------------------------------------------


class Workloads:
    """The client side of every workload; one instance per client process."""

    def __init__(self, host: IHost, info: PeerInfo, server_pid: int, args: argparse.Namespace):
        self.host = host
        self.info = info
        self.peer: ID = info.peer_id
        self.server_pid = server_pid
        self.args = args

    def _cpu(self) -> tuple[float, float]:
        return cpu_seconds(os.getpid()), cpu_seconds(self.server_pid)

    async def transfer(self, upload: int, download: int) -> dict[str, Any]:
        """One perf exchange with CPU and peak RSS of both processes."""
        reset = reset_peak_rss(os.getpid()) and reset_peak_rss(self.server_pid)
        before = rss_mb(os.getpid()), rss_mb(self.server_pid)
        c0, s0 = self._cpu()
        result = await run_perf(self.host, self.peer, upload, download)
        c1, s1 = self._cpu()
        nbytes = upload + download
        seconds = result.upload_seconds if upload else result.download_seconds
        return {
            "bytes": nbytes,
            "seconds": seconds,
            "mb_per_s": nbytes / seconds / 1e6,
            "client_cpu_s": c1 - c0,
            "server_cpu_s": s1 - s0,
            "cpu_ms_per_mib": (c1 - c0 + s1 - s0) * 1000 / (nbytes / MiB),
            "client_peak_rss_mb": peak_rss_mb(os.getpid()),
            "server_peak_rss_mb": peak_rss_mb(self.server_pid),
            "client_rss_before_mb": before[0],
            "server_rss_before_mb": before[1],
            "peak_rss_reset": reset,
            "perf": result.as_dict(),
        }

    async def upload(self) -> dict[str, Any]:
        return await self.transfer(self.args.size, 0)

    async def download(self) -> dict[str, Any]:
        return await self.transfer(0, self.args.size)

    async def ping(self) -> dict[str, Any]:
        """``/ipfs/ping/1.0.0`` round trips of 32 random bytes on one stream."""
        stream = await self.host.new_stream(self.peer, [PING_PROTOCOL])
        rtts = []
        for _ in range(self.args.pings):
            payload = os.urandom(32)
            t0 = time.perf_counter()
            await stream.write(payload)
            got = b""
            while len(got) < 32:
                chunk = await stream.read(32 - len(got))
                if not chunk:
                    raise EOFError("ping stream ended")
                got += chunk
            rtts.append(time.perf_counter() - t0)
            if got != payload:
                raise ValueError("ping payload came back different")
        await stream.close()
        rtts.sort()
        return {
            "count": len(rtts),
            "median_ms": statistics.median(rtts) * 1000,
            "p99_ms": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1000,
        }

    async def _echo_once(self, size: int = 1) -> None:
        stream = await self.host.new_stream(self.peer, [ECHO_PROTOCOL])
        await stream.write(b"x" * size)
        got = await stream.read(size)
        if len(got) != size:
            raise EOFError(f"echo returned {len(got)} of {size} bytes")
        await stream.close()

    async def _disconnect(self) -> None:
        """Close every connection to the server and wait (up to 2 s) until the swarm forgets it."""
        net = self.host.get_network()
        await net.close_peer(self.peer)
        with trio.move_on_after(2.0):
            while net.get_connections(self.peer):
                await trio.sleep(0.01)

    async def dial(self) -> dict[str, Any]:
        """Fresh connections: ``swarm.dial_addr`` + new echo stream + 1-byte echo, timed.

        ``dial_addr`` is below ``host.connect``/``dial_peer``, which add a fixed 250 ms wait.
        Closing the previous connection is not timed. A failed attempt (bounded to 10 s) is
        counted in ``failures`` and left out of the times, so one flaky dial does not hide the
        other figures.
        """
        net = self.host.get_network()
        times: list[float] = []
        failures: list[str] = []
        for _ in range(self.args.dials):
            await self._disconnect()
            t0 = time.perf_counter()
            try:
                with trio.fail_after(10):
                    await net.dial_addr(self.info.addrs[0], self.peer)
                    await self._echo_once()
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            times.append(time.perf_counter() - t0)
        await self._disconnect()
        await self.host.connect(self.info)  # back to one open connection for what follows
        if not times:
            raise RuntimeError(f"every dial failed; first: {failures[0]}")
        return {
            "count": len(times),
            "failures": len(failures),
            "first_failure": failures[0] if failures else None,
            "median_ms": statistics.median(times) * 1000,
            "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000,
        }

    async def streams(self) -> dict[str, Any]:
        """Sequential open + 1-byte echo + close on the open connection."""
        t0 = time.perf_counter()
        for _ in range(self.args.streams):
            await self._echo_once()
        seconds = time.perf_counter() - t0
        return {"count": self.args.streams, "seconds": seconds}

    async def idle(self) -> dict[str, Any]:
        """CPU of both processes while N extra client hosts hold one idle connection each."""
        n, seconds = self.args.idle_conns, self.args.idle_seconds
        async with trio.open_nursery() as nursery:
            ready = 0
            done = trio.Event()

            async def hold() -> None:
                nonlocal ready
                extra = build_host(
                    self.args.transport, engine=self.args.engine, metrics=self.args.metrics
                )
                async with extra.run(listen_addrs=[]):
                    await extra.connect(self.info)
                    ready += 1
                    await done.wait()

            for _ in range(n):
                nursery.start_soon(hold)
            while ready < n:
                await trio.sleep(0.05)
            await trio.sleep(1.0)  # let identify and other connection start-up settle
            c0, s0 = self._cpu()
            await trio.sleep(seconds)
            c1, s1 = self._cpu()
            done.set()
        return {
            "connections": n,
            "seconds": seconds,
            "client_cpu_s": c1 - c0,
            "server_cpu_s": s1 - s0,
            "cpu_percent": (c1 - c0 + s1 - s0) / seconds * 100,
        }


async def client(args: argparse.Namespace) -> int:
    info = info_from_p2p_addr(Multiaddr(args.addr))
    try:
        host = build_host(args.transport, engine=args.engine, metrics=args.metrics)
    except ImportError as exc:
        print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 3
    out: dict[str, Any] = {"implementation": implementation(), "workloads": {}}
    async with host.run(listen_addrs=[]):
        with trio.fail_after(args.timeout):
            await host.connect(info)
        work = Workloads(host, info, args.server_pid, args)
        for name in args.workloads.split(","):
            fn: Callable[[], Awaitable[dict[str, Any]]] = getattr(work, name)
            try:
                with trio.fail_after(args.timeout):
                    out["workloads"][name] = await fn()
            except Exception as exc:  # recorded per workload; later ones may still run
                out["workloads"][name] = {"error": f"{type(exc).__name__}: {exc}"}
                try:
                    with trio.fail_after(10):
                        await host.connect(info)
                except Exception:
                    break  # the connection cannot be restored: skip the rest
        print(json.dumps(out), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("serve", "client"):
        p = sub.add_parser(role)
        p.add_argument("--transport", choices=sorted(LISTEN), required=True)
        p.add_argument("--engine", choices=("qh3", "aioquic"))
        p.add_argument("--metrics", action="store_true", help="ours: Prometheus metrics on")
    c = sub.choices["client"]
    c.add_argument("--addr", required=True)
    c.add_argument("--server-pid", type=int, required=True)
    c.add_argument("--workloads", default="upload,download,ping,dial,streams,idle")
    c.add_argument("--size", type=int, default=64 * MiB)
    c.add_argument("--pings", type=int, default=1000)
    c.add_argument("--dials", type=int, default=50)
    c.add_argument("--streams", type=int, default=1000)
    c.add_argument("--idle-conns", type=int, default=10)
    c.add_argument("--idle-seconds", type=float, default=5.0)
    c.add_argument("--timeout", type=float, default=180.0, help="seconds per workload")
    args = parser.parse_args()
    if os.environ.get("PEER_PROFILE"):  # latency_breakdown.py --profile server
        import cProfile  # noqa: PLC0415
        import pstats  # noqa: PLC0415

        profiler = cProfile.Profile()
        try:
            return int(profiler.runcall(trio.run, serve if args.role == "serve" else client, args))
        finally:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            top = int(os.environ.get("PEER_PROFILE_TOP", "35"))
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
    return trio.run(serve if args.role == "serve" else client, args)


if __name__ == "__main__":
    sys.exit(main())
