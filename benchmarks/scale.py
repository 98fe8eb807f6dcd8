"""Scale benchmark: many connections on one node (not a test).

    python setup.py build_ext --inplace            # the compiled twins
    python benchmarks/scale.py                     # 1,000 connections, a burst of 500; ~3 min
    python benchmarks/scale.py --conns 5000 --burst 2000
    python benchmarks/scale.py --quick             # 100 connections, a burst of 100; < 1 min
    python benchmarks/scale.py --json out.json --markdown out.md --cases ours-qh3,libp2p-tcp

One server process per case, started afresh: ``ours-{qh3,aioquic}`` is the real
``py-libp2p-webtransport serve`` node (TCP + WebTransport, identify, ping, with ``--metrics`` so
its handshake phases can be read); ``ours-{qh3,aioquic}-transport`` is our transport alone, a
listener that keeps every connection and nothing else (the transport's own memory, no
py-libp2p host); ``ours-{qh3,aioquic}-quic`` and ``-quic-transport`` are the same over
``/quic-v1`` (our ``QuicTransport``: libp2p TLS, no CONNECT, no Noise; the ``serve`` node listens
on both on one port); ``ours-qh3-stock-tasks`` is ``serve --stock-task-lookup``: py-libp2p's own
task parent lookup, a walk over every connection's task per accept (``task_lookup.py``);
``libp2p-tcp`` is a py-libp2p host on TCP (Noise + Yamux). Both hosts get
``--max-connections`` room for every connection (py-libp2p keeps 256 inbound by default).
The client is one more process, a lightweight dialer: no py-libp2p host, just our
endpoint and handshake (``handshake.dial_session``; TCP: py-libp2p's TCP transport and
upgrader), a fresh Ed25519 identity per connection, spread over ``--sources`` loopback source
addresses (127.0.1.x) as many browsers come from many addresses. Loopback only.

Workloads, in order, on one server:

- ``accept``: ``--conns`` dials, ``--concurrency`` at a time. Accepted connections per second,
  server CPU per accepted connection (user + system from ``/proc``), the client's too, the median
  and p99 dial time, and for ours the server's handshake phases (``quic``: QUIC + TLS, ``connect``:
  the extended CONNECT, ``noise``; mean wall time per connection from its metrics).
- ``memory``: server RSS growth per connection between the first ``WARMUP`` connections and all
  of them, after a second of settling.
- ``idle``: server (and client) CPU as percent of one core over ``--idle-seconds`` with every
  connection open and keepalive on (a full keepalive period by default).
- ``ping``: ``--pings`` round trips of 32 bytes on one ``/ipfs/ping/1.0.0`` stream while every
  connection is open; median and p99 (the ``-transport`` cases have no host, so no ping).
- ``burst``: ``--burst`` more dials started at once, each bounded by ``--dial-timeout``; how many
  connected, were refused (by error) or hung; meanwhile one ping every 20 ms on an old
  connection from a process of its own (``_prober``: the burst saturates the dialer's event
  loop): the worst round trip and the failures show whether the node stayed responsive.

JSON (``--json PATH``), schema ``py-libp2p-webtransport/scale/1``:
``{"schema", "started", "machine": {"python", "platform", "cpus"}, "config": {...the options},
"cases": {CASE: {"status": "ok"|"failed"|"unavailable", "reason", "server": {"pid", "addr"},
"metrics": {METRIC: number|null}, "raw": client output}}}`` with METRICs as in ``METRICS``.
The Markdown table (``--markdown PATH``, and stdout) has one row per case.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SCHEMA = "py-libp2p-webtransport/scale/1"
CASES = (
    "ours-qh3",
    "ours-aioquic",
    "ours-qh3-transport",
    "ours-aioquic-transport",
    "ours-qh3-quic",
    "ours-aioquic-quic",
    "ours-qh3-quic-transport",
    "ours-aioquic-quic-transport",
    "ours-qh3-stock-tasks",
    "libp2p-tcp",
)
DEFAULT_CASES = ("ours-qh3", "ours-qh3-transport", "libp2p-tcp")
WARMUP = 20
PING = "/ipfs/ping/1.0.0"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: metric -> (unit, description); the Markdown columns, in order.
METRICS: dict[str, tuple[str, str]] = {
    "accepted_per_s": ("conn/s", "connections accepted per second (--concurrency dials at once)"),
    "server_cpu_ms_per_conn": ("ms", "server CPU per accepted connection"),
    "client_cpu_ms_per_conn": ("ms", "dialer CPU per connection"),
    "dial_median_ms": ("ms", "median dial time (handshake done) during accept"),
    "dial_p99_ms": ("ms", "p99 dial time during accept"),
    "phase_quic_ms": ("ms", "server: QUIC + TLS handshake, mean wall time"),
    "phase_connect_ms": ("ms", "server: extended CONNECT, mean wall time"),
    "phase_noise_ms": ("ms", "server: Noise, mean wall time"),
    "server_kib_per_conn": ("KiB", "server RSS growth per idle connection"),
    "idle_cpu_percent": ("% core", "server CPU with every connection idle (keepalive on)"),
    "client_idle_cpu_percent": ("% core", "dialer CPU over the same window"),
    "ping_median_ms": ("ms", "ping round trip on one connection, every connection open"),
    "ping_p99_ms": ("ms", "p99 of the same"),
    "burst_connected": ("", "burst dials that connected"),
    "burst_refused": ("", "burst dials refused with an error"),
    "burst_hung": ("", "burst dials still pending at --dial-timeout"),
    "burst_seconds": ("s", "time until every burst dial ended"),
    "burst_ping_max_ms": ("ms", "worst ping round trip during the burst (from another process)"),
    "failed_dials": ("", "accept-phase dials that failed"),
    "closed_while_idle": ("", "connections that ended during the idle window (should be 0)"),
}


# --- /proc --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Current resident set size of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- servers --------------------------------------------------------------------------------------


async def bare_server(engine: str, quic: bool = False) -> None:
    """``_transport_server``: our transport alone (WebTransport, or ``/quic-v1`` with ``quic``),
    keeping every connection; prints its address."""
    import trio
    from libp2p.crypto.ed25519 import create_new_key_pair
    from multiaddr import Multiaddr

    from py_libp2p_webtransport import QuicTransport, WebTransportConfig, WebTransportTransport

    key = create_new_key_pair()
    cls = QuicTransport if quic else WebTransportTransport
    transport = cls(key.private_key, WebTransportConfig(engine=engine))
    kept = []

    async def keep(conn: Any) -> None:
        kept.append(conn)

    listener = transport.create_listener(keep)
    async with trio.open_nursery() as nursery:
        transport.set_background_nursery(nursery)
        listen = "/ip4/127.0.0.1/udp/0/quic-v1" + ("" if quic else "/webtransport")
        await listener.listen(Multiaddr(listen))
        from libp2p.peer.id import ID

        peer = ID.from_pubkey(key.public_key)
        addr = f"{listener.get_addrs()[0]}/p2p/{peer}"
        print(json.dumps({"addr": addr, "pid": os.getpid()}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        await transport.close()
        nursery.cancel_scope.cancel()


async def tcp_server(limit: int) -> None:
    """``_tcp_server``: a py-libp2p host on TCP (Noise + Yamux) keeping up to ``limit``
    connections; prints its address."""
    import trio
    from libp2p import new_host
    from multiaddr import Multiaddr

    from py_libp2p_webtransport.apps.services import register_handlers
    from py_libp2p_webtransport.cli.deploy import host_options_from_args

    options = host_options_from_args(argparse.Namespace(max_connections=limit))
    listen = [Multiaddr("/ip4/127.0.0.1/tcp/0")]
    host = new_host(listen_addrs=listen, **options)
    async with host.run(listen_addrs=listen):
        register_handlers(host)
        addr = f"{host.get_addrs()[0]}"
        if "/p2p/" not in addr:
            addr = f"{addr}/p2p/{host.get_id()}"
        print(json.dumps({"addr": addr, "pid": os.getpid()}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


class Server:
    """One server process of a case; ``addr`` is its dialable multiaddr."""

    def __init__(self, case: str, limit: int, profile: str | None = None) -> None:
        self.case = case
        self.profile = profile
        self.metrics_url: str | None = None
        engine = "aioquic" if "aioquic" in case else "qh3"
        env = dict(os.environ)
        if case == "libp2p-tcp":
            cmd = [sys.executable, os.path.abspath(__file__), "_tcp_server", str(limit)]
        elif case.endswith("-transport"):
            cmd = [sys.executable, os.path.abspath(__file__), "_transport_server", engine]
            if "-quic" in case:
                cmd.append("--quic")
        else:
            cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", "--engine", engine]
            # --ephemeral: a throwaway identity, no key file written
            cmd += ["--metrics", "127.0.0.1:0", "--ephemeral", "--max-connections", str(limit)]
            if case.endswith("-stock-tasks"):
                cmd.append("--stock-task-lookup")
        if profile is not None:  # the same server under cProfile (written at its exit)
            cmd = [sys.executable, "-m", "cProfile", "-o", profile, *cmd[1:]]
        # The server's log (warnings, the metrics address) goes to a file: a pipe nobody reads
        # would fill up and block the server.
        self.log_path = os.path.join(tempfile.gettempdir(), f"scale-{case}-{os.getpid()}.log")
        self.log = open(self.log_path, "w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.addr, self.pid = self._read_address()

    def log_tail(self, chars: int = 2000) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-chars:]

    def _read_address(self) -> tuple[str, int]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.case} server exited: {self.log_tail()}")
            line = line.strip()
            if line.startswith("{"):
                info = json.loads(line)
                if "unavailable" in info:
                    raise RuntimeError(info["unavailable"])
                return info["addr"], int(info["pid"])
            if "127.0.0.1" in line and ("/webtransport/" in line) != ("-quic" in self.case):
                # serve prints its WebTransport address, then the QUIC one (same port)
                self._read_metrics_url()
                return line, self.proc.pid
        raise RuntimeError(f"{self.case} server printed no address in 60 s")

    def _read_metrics_url(self) -> None:
        for line in self.log_tail(100_000).splitlines():
            if line.startswith("metrics on "):
                self.metrics_url = line.split()[-1]

    def _scrape(self) -> str:
        assert self.metrics_url is not None
        with urllib.request.urlopen(self.metrics_url, timeout=10) as answer:  # loopback only
            return str(answer.read().decode())

    def endpoint_counters(self) -> dict[str, float]:
        """The server endpoint's non-zero counters: drops by reason, Retries, refusals."""
        if self.metrics_url is None:
            return {}
        out: dict[str, float] = {}
        for line in self._scrape().splitlines():
            if line.startswith("#") or not line.startswith("py_libp2p_webtransport_"):
                continue
            name, value = line.rsplit(" ", 1)
            name = name.removeprefix("py_libp2p_webtransport_")
            if name.startswith("packets_dropped_total{reason="):
                name = "dropped_" + name.split('"')[1]
            elif name not in (
                "retries_sent_total",
                "refusals_sent_total",
                "handshake_timeouts_total",
                "send_blocked_total",
                "send_errors_total",
            ):
                continue
            if float(value):
                out[name.removesuffix("_total")] = float(value)
        return out

    def phases_ms(self) -> dict[str, float]:
        """Mean server-side handshake phase times (ms) from the metrics scrape."""
        if self.metrics_url is None:
            return {}
        text = self._scrape()
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if "handshake_duration_seconds_" not in line or 'direction="inbound"' not in line:
                continue
            name, value = line.rsplit(" ", 1)
            phase = name.split('phase="', 1)[1].split('"', 1)[0]
            # One series per transport label (webtransport, quic): their sum is the mean's.
            if name.split("{", 1)[0].endswith("_sum"):
                sums[phase] = sums.get(phase, 0.0) + float(value)
            elif name.split("{", 1)[0].endswith("_count"):
                counts[phase] = counts.get(phase, 0.0) + float(value)
        return {p: sums[p] / counts[p] * 1e3 for p in sums if counts.get(p)}

    def stop(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.send_signal(2)  # SIGINT: serve's clean shutdown; peer.py ends on EOF anyway
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- the dialer (client process) ----------------------------------------------------------------


class Dialer:
    """Connections without a py-libp2p host: ours over WebTransport or ``/quic-v1``, or TCP +
    Noise + Yamux."""

    def __init__(self, case: str, addr: str, sources: int) -> None:
        self.case = case
        self.addr = addr
        self.sources = sources
        self.tcp = case == "libp2p-tcp"
        self.quic = "-quic" in case
        self.engine = "aioquic" if "aioquic" in case else "qh3"
        self.conns: list[Any] = []

    async def start(self, nursery: Any) -> None:
        from multiaddr import Multiaddr

        self.nursery = nursery
        if self.tcp:
            from libp2p.peer.peerinfo import info_from_p2p_addr
            from libp2p.transport.tcp.tcp import TCP

            info = info_from_p2p_addr(Multiaddr(self.addr))
            self.peer_id = info.peer_id
            self.target = info.addrs[0]
            self.transport = TCP()
            return
        from py_libp2p_webtransport import WebTransportConfig
        from py_libp2p_webtransport.endpoint import Endpoint, EndpointOptions
        from py_libp2p_webtransport.multiaddr import (
            parse_quic_multiaddr,
            parse_webtransport_multiaddr,
        )

        self.config = WebTransportConfig(engine=self.engine)
        if self.quic:
            self.target = parse_quic_multiaddr(Multiaddr(self.addr))
        else:
            self.target = parse_webtransport_multiaddr(Multiaddr(self.addr))
            self.engine_config = self.config.engine_config(
                is_client=True, server_name=self.target.sni, certificate=None
            )
        self.endpoints = []
        for i in range(self.sources):
            options = EndpointOptions(engine=self.engine)
            endpoint = await Endpoint.bind(f"127.0.1.{i + 1}", 0, options)
            nursery.start_soon(endpoint.run)
            self.endpoints.append(endpoint)
        self._next_endpoint = itertools.cycle(self.endpoints)

    async def dial(self) -> Any:
        """One new connection with a fresh identity; returns the muxed connection."""
        from libp2p.crypto.ed25519 import create_new_key_pair

        key = create_new_key_pair()
        if self.tcp:
            conn = await self._dial_tcp(key)
        elif self.quic:
            conn = await self._dial_quic(key)
        else:
            conn = await self._dial_ours(key)
        self.nursery.start_soon(_decline_streams, conn)
        return conn

    async def _dial_ours(self, key: Any) -> Any:
        from py_libp2p_webtransport.handshake import dial_session

        endpoint = next(self._next_endpoint)

        async def endpoint_for(family: int) -> Any:
            return endpoint

        session = await dial_session(
            endpoint_for,
            self.target,
            private_key=key.private_key,
            config=self.config,
            engine_config=self.engine_config,
            engine=self.engine,
        )
        return session.conn

    async def _dial_quic(self, key: Any) -> Any:
        """``QuicTransport.dial``'s steps, from one of our source endpoints."""
        from libp2p.peer.id import ID

        from py_libp2p_webtransport import QuicTransport
        from py_libp2p_webtransport.quic_conn import QuicConnection

        # The client's libp2p certificate is made from its (fresh) key, as a host's would be.
        engine_config = QuicTransport(key.private_key, self.config).engine_config(is_client=True)
        ep_conn = next(self._next_endpoint).connect(
            (self.target.host, self.target.port), engine_config, engine=self.engine
        )
        conn = QuicConnection(
            ep_conn,
            is_initiator=True,
            config=self.config,
            local_peer=ID.from_pubkey(key.public_key),
            expected_peer=self.target.peer_id,
        )
        await conn.authenticated.wait()
        if conn.authentication_error is not None:
            raise conn.authentication_error
        return conn

    async def _dial_tcp(self, key: Any) -> Any:
        from libp2p import create_yamux_muxer_option
        from libp2p.crypto.x25519 import create_new_key_pair as noise_key_pair
        from libp2p.security.noise.transport import PROTOCOL_ID, Transport
        from libp2p.transport.upgrader import TransportUpgrader

        upgrader = TransportUpgrader(
            {PROTOCOL_ID: Transport(key, noise_privkey=noise_key_pair().private_key)},
            create_yamux_muxer_option(),
        )
        raw = await self.transport.dial(self.target)
        secure = await upgrader.upgrade_security(raw, True, self.peer_id)
        muxed = await upgrader.upgrade_connection(secure, self.peer_id)
        self.nursery.start_soon(muxed.start)
        return muxed

    async def close(self) -> None:
        import trio

        with trio.move_on_after(30):
            async with trio.open_nursery() as nursery:
                for conn in self.conns:
                    nursery.start_soon(_close_quietly, conn)
        for endpoint in getattr(self, "endpoints", []):
            endpoint.close()


async def _decline_streams(conn: Any) -> None:
    """Answer every stream the server opens (identify, at once) with multistream's "na", as a
    peer that speaks none of its protocols: no stream is left waiting for a timeout."""
    while True:
        try:
            stream = await conn.accept_stream()
        except Exception:  # noqa: BLE001 - the connection ended
            return
        try:
            await _read_message(stream)  # /multistream/1.0.0; py-libp2p waits for ours
            await stream.write(_frame("/multistream/1.0.0"))
            await _read_message(stream)  # the protocol it proposes
            await stream.write(_frame("na"))
            await stream.close()
        except Exception:  # noqa: BLE001 - the server gave up on this stream first
            await _close_quietly(stream)


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:  # noqa: BLE001 - closing at the end of a benchmark: nothing to report
        pass


def _frame(message: str) -> bytes:
    data = message.encode() + b"\n"
    out = bytearray()
    n = len(data)
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out) + data


async def _read_exact(stream: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.read(n - len(data))
        if not chunk:
            raise EOFError("stream ended")
        data += chunk
    return data


async def _read_message(stream: Any) -> str:
    length, shift = 0, 0
    while True:
        byte = (await _read_exact(stream, 1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return (await _read_exact(stream, length)).decode().rstrip("\n")


class Pinger:
    """A ``/ipfs/ping/1.0.0`` stream on one connection (multistream-select by hand)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    @classmethod
    async def open(cls, conn: Any) -> Pinger:
        stream = await conn.open_stream()
        await stream.write(_frame("/multistream/1.0.0") + _frame(PING))
        for expected in ("/multistream/1.0.0", PING):
            answer = await _read_message(stream)
            if answer != expected:
                raise RuntimeError(f"ping negotiation: expected {expected!r}, got {answer!r}")
        return cls(stream)

    async def ping(self) -> float:
        payload = os.urandom(32)
        started = time.perf_counter()
        await self.stream.write(payload)
        if await _read_exact(self.stream, 32) != payload:
            raise RuntimeError("ping answer differs from what was sent")
        return (time.perf_counter() - started) * 1e3


async def run_prober(args: argparse.Namespace) -> None:
    """``_prober``: one connection from a process of its own, pinged every 20 ms from the
    ``go`` line on stdin to the ``stop`` line; then the round trips as JSON on stdout. The burst
    runs in the dialer process and saturates its event loop: pings sent from there measured the
    dialer, not the server."""
    import trio

    rtts: list[float] = []
    failures = 0
    async with trio.open_nursery() as nursery:
        dialer = Dialer(args.case, args.addr, 1)
        await dialer.start(nursery)
        pinger = await Pinger.open(await dialer.dial())
        await pinger.ping()
        stdin = trio.wrap_file(sys.stdin)
        print("ready", flush=True)
        if (await stdin.readline()).strip() != "go":
            raise RuntimeError("the prober expected 'go'")
        stop = trio.Event()

        async def ping_until_stopped() -> None:
            nonlocal failures
            while True:  # at least one ping after "go", however short the burst
                try:
                    with trio.fail_after(10):
                        rtts.append(await pinger.ping())
                except Exception:  # noqa: BLE001 - counted
                    failures += 1
                    return
                if stop.is_set():
                    return
                await trio.sleep(0.02)

        async with trio.open_nursery() as pings:
            pings.start_soon(ping_until_stopped)
            await stdin.readline()  # "stop" (or the end of stdin)
            stop.set()
        await dialer.close()
        nursery.cancel_scope.cancel()
    print(json.dumps({"rtts_ms": rtts, "failures": failures}), flush=True)


class Prober:
    """The ``_prober`` process of a case, driven over its stdin (see ``run_prober``)."""

    def __init__(self, args: argparse.Namespace) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "_prober", "--case", args.case]
        cmd += ["--addr", args.addr]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"the prober did not start (exit {self.proc.wait()})")

    def say(self, line: str) -> None:
        self.stdin.write(line + "\n")
        self.stdin.flush()

    def result(self) -> dict[str, Any]:
        self.say("stop")
        out: dict[str, Any] = json.loads(self.stdout.readline())
        self.stdin.close()
        self.proc.wait(timeout=30)
        return out


async def run_client(args: argparse.Namespace) -> dict[str, Any]:
    """Every workload against one server; figures as a dict (the ``METRICS`` keys and more)."""
    import trio

    out: dict[str, Any] = {}
    me = os.getpid()
    async with trio.open_nursery() as nursery:
        dialer = Dialer(args.case, args.addr, args.sources)
        await dialer.start(nursery)
        failures: Counter[str] = Counter()
        times: list[float] = []
        gate = trio.Semaphore(args.concurrency)

        async def one_dial() -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    with trio.fail_after(args.dial_timeout):
                        conn = await dialer.dial()
                except Exception as error:  # noqa: BLE001 - counted by type, reported
                    failures[type(error).__name__] += 1
                    return
                times.append((time.perf_counter() - started) * 1e3)
                dialer.conns.append(conn)

        # warm-up: the first connections load code and fill caches; memory is measured after
        async with trio.open_nursery() as dials:
            for _ in range(min(WARMUP, args.conns)):
                dials.start_soon(one_dial)
        await trio.sleep(1)
        rss_warm, warm = rss_bytes(args.server_pid), len(dialer.conns)
        c0, s0, t0 = cpu_seconds(me), cpu_seconds(args.server_pid), time.perf_counter()
        async with trio.open_nursery() as dials:
            for _ in range(args.conns - min(WARMUP, args.conns)):
                dials.start_soon(one_dial)
        c1, s1, t1 = cpu_seconds(me), cpu_seconds(args.server_pid), time.perf_counter()
        timed = max(len(dialer.conns) - warm, 1)
        progress(f"  accept: {len(dialer.conns)} connected, {sum(failures.values())} failed")
        out["accepted_per_s"] = timed / (t1 - t0)
        out["server_cpu_ms_per_conn"] = (s1 - s0) * 1e3 / timed
        out["client_cpu_ms_per_conn"] = (c1 - c0) * 1e3 / timed
        out["dial_median_ms"] = statistics.median(times) if times else None
        out["dial_p99_ms"] = percentile(times, 0.99)
        out["failed_dials"] = sum(failures.values())
        out["accept_failures"] = dict(failures)
        out["connections"] = len(dialer.conns)

        await trio.sleep(1)
        grown = len(dialer.conns) - warm
        rss_all = rss_bytes(args.server_pid)
        out["server_kib_per_conn"] = (rss_all - rss_warm) / 1024 / grown if grown > 0 else None
        out["server_rss_mb"] = rss_all / 1e6

        c0, s0, t0 = cpu_seconds(me), cpu_seconds(args.server_pid), time.perf_counter()
        await trio.sleep(args.idle_seconds)
        c1, s1, t1 = cpu_seconds(me), cpu_seconds(args.server_pid), time.perf_counter()
        out["idle_cpu_percent"] = (s1 - s0) / (t1 - t0) * 100
        out["client_idle_cpu_percent"] = (c1 - c0) / (t1 - t0) * 100
        progress(f"  idle: server {out['idle_cpu_percent']:.1f} % of a core")
        # Keepalive must hold every idle connection open: count (and say why) any that ended.
        ended = Counter(
            str(getattr(conn, "close_reason", None) or "closed")
            for conn in dialer.conns
            if getattr(conn, "is_closed", False)
        )
        out["closed_while_idle"] = sum(ended.values())
        out["closed_while_idle_reasons"] = dict(ended)
        if ended:
            progress(f"  idle: {sum(ended.values())} connections ended: {dict(ended)}")
        dialer.conns = [c for c in dialer.conns if not getattr(c, "is_closed", False)]

        pinger = None
        if not args.case.endswith("-transport") and dialer.conns:
            pinger = await Pinger.open(dialer.conns[0])
            rtts = [await pinger.ping() for _ in range(args.pings)]
            out["ping_median_ms"] = statistics.median(rtts)
            out["ping_p99_ms"] = percentile(rtts, 0.99)

        burst: Counter[str] = Counter()
        messages: dict[str, str] = {}  # one example message per refusal type

        async def burst_dial() -> None:
            try:
                with trio.fail_after(args.dial_timeout):
                    conn = await dialer.dial()
            except trio.TooSlowError:
                burst["hung"] += 1
                return
            except Exception as error:  # noqa: BLE001 - counted by type, reported
                burst[f"refused: {type(error).__name__}"] += 1
                messages.setdefault(type(error).__name__, str(error)[:300])
                return
            burst["connected"] += 1
            dialer.conns.append(conn)

        # Pings on an old connection while the burst lasts, from another process (see
        # ``run_prober``): whether the node stayed responsive.
        prober = None
        if pinger is not None:
            prober = await trio.to_thread.run_sync(Prober, args)
            prober.say("go")
        started = time.perf_counter()
        async with trio.open_nursery() as burst_nursery:
            for _ in range(args.burst):
                burst_nursery.start_soon(burst_dial)
        out["burst_seconds"] = time.perf_counter() - started
        out["burst_connected"] = burst["connected"]
        out["burst_hung"] = burst["hung"]
        out["burst_refused"] = sum(v for k, v in burst.items() if k.startswith("refused"))
        out["burst_outcomes"] = dict(burst)
        out["burst_refusal_examples"] = messages
        probed = await trio.to_thread.run_sync(prober.result) if prober is not None else None
        burst_pings = probed["rtts_ms"] if probed is not None else []
        out["burst_ping_max_ms"] = max(burst_pings) if burst_pings else None
        out["burst_ping_p99_ms"] = percentile(burst_pings, 0.99)
        out["burst_pings"] = len(burst_pings)
        out["burst_ping_failures"] = probed["failures"] if probed is not None else 0
        progress(f"  burst: {dict(burst)} in {out['burst_seconds']:.1f} s")
        await dialer.close()
        nursery.cancel_scope.cancel()
    return out


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- orchestration ------------------------------------------------------------------------------


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    progress(f"{case}: starting the server")
    try:
        # room for every connection and the burst: py-libp2p's default keeps 300
        profile = None
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
            profile = os.path.join(args.profile, f"{case}.prof")
        server = Server(case, limit=args.conns + args.burst + 100, profile=profile)
    except Exception as error:  # noqa: BLE001 - reported as the case's status
        return {"status": "unavailable", "reason": str(error), "metrics": {}, "raw": None}
    try:
        cmd = [sys.executable, os.path.abspath(__file__), "_client", "--case", case]
        cmd += ["--addr", server.addr, "--server-pid", str(server.pid)]
        for name in ("conns", "concurrency", "burst", "pings", "sources"):
            cmd += [f"--{name}", str(getattr(args, name))]
        cmd += ["--idle-seconds", str(args.idle_seconds), "--dial-timeout", str(args.dial_timeout)]
        budget = 120 + args.conns * 0.2 + args.idle_seconds + args.dial_timeout * 2
        client = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, timeout=budget, cwd=ROOT, check=False
        )
        if client.returncode != 0:
            return {
                "status": "failed",
                "reason": f"client exited {client.returncode}",
                "metrics": {},
                "raw": None,
                "server": {"pid": server.pid, "addr": server.addr},
            }
        raw = json.loads(client.stdout.strip().splitlines()[-1])
        phases = server.phases_ms()
        raw["server_counters"] = server.endpoint_counters()
        if raw["server_counters"]:
            progress(f"  server: {raw['server_counters']}")
        for phase in ("quic", "connect", "noise"):
            raw[f"phase_{phase}_ms"] = phases.get(phase)
    except subprocess.TimeoutExpired:
        return {
            "status": "failed",
            "reason": "client ran past its time budget",
            "metrics": {},
            "raw": None,
            "server": {"pid": server.pid, "addr": server.addr},
        }
    finally:
        server.stop()
        if server.profile is not None:
            summarize_profile(server.profile)
    metrics = {name: raw.get(name) for name in METRICS}
    return {
        "status": "ok",
        "reason": None,
        "server": {"pid": server.pid, "addr": server.addr},
        "metrics": metrics,
        "raw": raw,
    }


def summarize_profile(path: str, top: int = 30) -> None:
    """Write the server profile's heaviest functions (own time) next to it, as text."""
    import io
    import pstats

    if not os.path.exists(path):
        progress(f"  profile: {path} was not written (the server did not exit cleanly)")
        return
    text = io.StringIO()
    stats = pstats.Stats(path, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    with open(path + ".txt", "w") as f:
        f.write(text.getvalue())
    progress(f"  profile: {path} ({path}.txt: top {top} by own and cumulative time)")


def markdown(results: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    head = (
        "| case | "
        + " | ".join(f"{name} ({unit})" if unit else name for name, (unit, _) in METRICS.items())
        + " |"
    )
    rule = "|" + "---|" * (len(METRICS) + 1)
    rows = []
    for case, result in results.items():
        if result["status"] != "ok":
            rows.append(f"| {case} | {result['status']}: {result['reason']} |")
            continue
        cells = " | ".join(cell(result["metrics"].get(name)) for name in METRICS)
        rows.append(f"| {case} | {cells} |")
    return "\n".join([head, rule, *rows]) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("_client", help="(internal) the dialer process")
    client.add_argument("--case", required=True, choices=CASES)
    client.add_argument("--addr", required=True)
    client.add_argument("--server-pid", type=int, required=True)
    prober = sub.add_parser("_prober", help="(internal) pings during the burst")
    prober.add_argument("--case", required=True, choices=CASES)
    prober.add_argument("--addr", required=True)
    server = sub.add_parser("_transport_server", help="(internal) our transport alone")
    server.add_argument("engine", choices=("qh3", "aioquic"))
    server.add_argument("--quic", action="store_true", help="/quic-v1 instead of WebTransport")
    tcp = sub.add_parser("_tcp_server", help="(internal) a py-libp2p host on TCP")
    tcp.add_argument("limit", type=int)
    for p in (parser, client):
        p.add_argument("--conns", type=int, default=1000, help="connections to hold (1000)")
        p.add_argument("--concurrency", type=int, default=32, help="dials at once (32)")
        p.add_argument("--burst", type=int, default=500, help="dials started at once (500)")
        p.add_argument("--pings", type=int, default=200, help="pings with all open (200)")
        p.add_argument("--sources", type=int, default=16, help="loopback source addresses (16)")
        p.add_argument("--idle-seconds", type=float, default=16.0, help="idle window (16 s)")
        p.add_argument("--dial-timeout", type=float, default=30.0, help="bound per dial (30 s)")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="100 connections, burst 100, 3 s idle")
    parser.add_argument(
        "--profile", metavar="DIR", help="run each server under cProfile; stats into DIR"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as Markdown")
    args = parser.parse_args(argv)
    if args.command is None:
        if args.quick:
            args.conns, args.burst, args.idle_seconds, args.pings = 100, 100, 3.0, 50
        cases = [c for c in args.cases.split(",") if c]
        unknown = [c for c in cases if c not in CASES]
        if unknown:
            parser.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
        if args.conns < 1 or args.concurrency < 1 or args.burst < 0 or args.sources < 1:
            parser.error("--conns, --concurrency and --sources must be >= 1, --burst >= 0")
        args.case_list = cases
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "_transport_server":
        import trio

        trio.run(bare_server, args.engine, args.quic)
        return 0
    if args.command == "_tcp_server":
        import trio

        trio.run(tcp_server, args.limit)
        return 0
    if args.command == "_prober":
        import trio

        trio.run(run_prober, args)
        return 0
    if args.command == "_client":
        import trio

        print(json.dumps(trio.run(run_client, args)), flush=True)
        return 0
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results = {case: run_case(case, args) for case in args.case_list}
    report = {
        "schema": SCHEMA,
        "started": started,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "config": {
            name: getattr(args, name)
            for name in (
                "conns",
                "concurrency",
                "burst",
                "pings",
                "sources",
                "idle_seconds",
                "dial_timeout",
                "quick",
            )
        },
        "metrics": {
            name: {"unit": unit, "description": text} for name, (unit, text) in METRICS.items()
        },
        "cases": results,
    }
    table = markdown(results)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
