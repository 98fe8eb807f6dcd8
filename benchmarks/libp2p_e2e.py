"""End-to-end figures through real py-libp2p hosts on loopback. Not a test: it only measures.

Per engine (and, with --builtin, for py-libp2p 0.8's own WebTransport for comparison):
  dial      transport-level dial (QUIC + CONNECT + Noise) to a listening host, median of N
            (``host.connect`` adds a fixed ~250 ms swarm wait, so the transport is timed directly)
  ping      libp2p ping RTT over an open connection, median of N
  upload    /perf/1.0.0 upload of SIZE bytes (client -> server), timed until the server answers
  download  /perf/1.0.0 download of SIZE bytes (server -> client)

Usage: python benchmarks/libp2p_e2e.py [--engines qh3,aioquic] [--size-mib 100] [--dials 20]
       [--pings 50] [--builtin] [--json PATH]
Run from the repository root after `python setup.py build_ext --inplace`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trio  # noqa: E402
from libp2p import new_host  # noqa: E402
from libp2p.abc import ITransport  # noqa: E402
from libp2p.crypto.ed25519 import create_new_key_pair  # noqa: E402
from libp2p.host.ping import ID as PING_ID  # noqa: E402
from libp2p.io.utils import read_exactly  # noqa: E402
from libp2p.peer.peerinfo import PeerInfo  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402

from py_libp2p_webtransport import IMPLEMENTATION  # noqa: E402
from py_libp2p_webtransport.apps.perf import run_perf  # noqa: E402
from py_libp2p_webtransport.apps.services import register_handlers  # noqa: E402
from py_libp2p_webtransport.config import WebTransportConfig  # noqa: E402
from py_libp2p_webtransport.transport import WebTransportTransport  # noqa: E402

LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")


def _transport(kind: str, private_key: Any) -> ITransport:
    if kind == "builtin":
        from libp2p.transport.webtransport import WebTransportTransport as Builtin

        return Builtin(private_key)
    return WebTransportTransport(private_key, WebTransportConfig(engine=kind))


async def measure(kind: str, size: int, dials: int, pings: int) -> dict[str, Any]:
    """All figures for one transport kind (an engine name, or "builtin")."""
    server_kp, client_kp = create_new_key_pair(), create_new_key_pair()
    server_t = _transport(kind, server_kp.private_key)
    client_t = _transport(kind, client_kp.private_key)
    server = new_host(key_pair=server_kp, transports=[server_t], listen_addrs=[LISTEN])
    client = new_host(key_pair=client_kp, transports=[client_t], listen_addrs=[])
    register_handlers(server)
    result: dict[str, Any] = {"transport": kind}
    async with server.run(listen_addrs=[LISTEN]), client.run(listen_addrs=[]):
        addr = next(a for a in server.get_transport_addrs() if "webtransport" in str(a))
        full = Multiaddr(f"{addr}/p2p/{server.get_id()}")

        times = []
        for _ in range(dials):
            start = time.perf_counter()
            conn = await client_t.dial(full)
            times.append(time.perf_counter() - start)
            await conn.close()
        result["dial_ms_median"] = statistics.median(times) * 1e3

        await client.connect(PeerInfo(server.get_id(), [addr]))
        # PingService reports whole milliseconds: time the 32-byte ping exchanges ourselves.
        stream = await client.new_stream(server.get_id(), [PING_ID])
        rtts = []
        for _ in range(pings):
            payload = os.urandom(32)
            start = time.perf_counter()
            await stream.write(payload)
            echoed = await read_exactly(stream, 32)
            rtts.append(time.perf_counter() - start)
            assert echoed == payload
        await stream.close()
        result["ping_rtt_ms_median"] = statistics.median(rtts) * 1e3

        up = await run_perf(client, server.get_id(), size, 0)
        result["upload_MBps"] = up.upload_mb_per_s
        down = await run_perf(client, server.get_id(), 0, size)
        result["download_MBps"] = down.download_mb_per_s
    for t in (server_t, client_t):
        close = getattr(t, "close", None)
        if close is not None:
            await close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="qh3,aioquic")
    parser.add_argument("--size-mib", type=float, default=100)
    parser.add_argument("--dials", type=int, default=20)
    parser.add_argument("--pings", type=int, default=50)
    parser.add_argument("--builtin", action="store_true", help="also py-libp2p's own WT")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    kinds = [e for e in args.engines.split(",") if e]
    if args.builtin:
        kinds.append("builtin")
    size = int(args.size_mib * 1024 * 1024)
    results = []
    for kind in kinds:
        res = trio.run(measure, kind, size, args.dials, args.pings)
        results.append(res)
        print(
            f"{kind:8s} dial {res['dial_ms_median']:7.2f} ms"
            f"  ping {res['ping_rtt_ms_median']:6.3f} ms"
            f"  upload {res['upload_MBps']:7.1f} MB/s  download {res['download_MBps']:7.1f} MB/s",
            flush=True,
        )
    if args.json:
        meta = {"python": platform.python_version(), "implementation": IMPLEMENTATION}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "size_bytes": size, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
