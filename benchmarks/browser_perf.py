"""Browser throughput: headless Chromium running js-libp2p does /perf/1.0.0 against a Python host.

Not a test: it only measures. For each server kind (our transport on qh3 and on aioquic, and
py-libp2p 0.8's built-in WebTransport) and each run, a fresh host and a fresh browser: the page
dials, then uploads and downloads SIZE bytes on one perf stream (tests/browser/src/page.js: the
upload is timed until the first downloaded byte, the server sends only after it read our EOF).
Prints the median of the runs, the byte counts the page checked, and the server process's CPU
seconds per GB moved (user+system of this process, so the host's whole Python side).

Usage: python benchmarks/browser_perf.py [--runs 3] [--size-mib 32] [--kinds qh3,aioquic,builtin]
       [--browser chromium] [--json PATH]
Run from the repository root after `python setup.py build_ext --inplace` and, in tests/browser,
`npm ci && npm run build`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the tests support package

import trio  # noqa: E402
from libp2p import new_host  # noqa: E402
from libp2p.crypto.ed25519 import create_new_key_pair  # noqa: E402
from multiaddr import Multiaddr  # noqa: E402
from support.browser_harness import missing_browser_piece, run_browser  # noqa: E402

from py_libp2p_webtransport import IMPLEMENTATION  # noqa: E402
from py_libp2p_webtransport.apps.services import register_handlers  # noqa: E402
from py_libp2p_webtransport.config import WebTransportConfig  # noqa: E402
from py_libp2p_webtransport.transport import WebTransportTransport  # noqa: E402

SCHEMA = "py-libp2p-webtransport/browser-perf/1"
LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")


@asynccontextmanager
async def perf_host(kind: str) -> AsyncIterator[str]:
    """A host serving /perf/1.0.0 on loopback; yields its WebTransport multiaddr (with /p2p)."""
    kp = create_new_key_pair()
    transport: Any
    if kind == "builtin":
        from libp2p.transport.webtransport import WebTransportTransport as Builtin

        transport = Builtin(kp.private_key)
    else:
        transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=kind))
    host = new_host(key_pair=kp, transports=[transport], listen_addrs=[LISTEN])
    register_handlers(host)
    async with host.run(listen_addrs=[LISTEN]):
        addr = next(str(a) for a in host.get_addrs() if "webtransport" in str(a))
        if "/p2p/" not in addr:
            addr = f"{addr}/p2p/{host.get_id()}"
        yield addr
    close = getattr(transport, "close", None)
    if close is not None:
        await close()


async def one_run(kind: str, size: int, browser: str) -> dict[str, Any]:
    """One fresh host and browser; the page's perf step figures plus server CPU."""
    async with perf_host(kind) as addr:
        cpu0 = time.process_time()
        try:
            report = await run_browser(
                browser,
                [{"op": "dial", "addr": addr}, {"op": "perf", "upload": size, "download": size}],
                timeout=120,
            )
        except AssertionError as error:  # the runner failed (timeout, crash): record it
            return {"ok": False, "error": str(error)[:500]}
        cpu = time.process_time() - cpu0
    steps = {s["op"]: s for s in report.steps}
    perf = steps.get("perf")
    if perf is None or not perf.get("ok"):
        failed = perf or steps.get("dial") or {}
        return {"ok": False, "error": str(failed.get("error"))[:500]}
    exact = perf["uploaded"] == size and perf["downloaded"] == size
    return {
        "ok": exact,
        "uploaded": perf["uploaded"],
        "downloaded": perf["downloaded"],
        "upload_MBps": perf["uploadMBps"],
        "download_MBps": perf["downloadMBps"],
        "server_cpu_s_per_GB": cpu / ((perf["uploaded"] + perf["downloaded"]) / 1e9),
    }


def summarize(kind: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if r["ok"]]

    def median(key: str) -> float | None:
        return statistics.median(r[key] for r in good) if good else None

    return {
        "server": kind,
        "runs": runs,
        "ok_runs": len(good),
        "upload_MBps_median": median("upload_MBps"),
        "download_MBps_median": median("download_MBps"),
        "server_cpu_s_per_GB_median": median("server_cpu_s_per_GB"),
    }


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=float, default=32)
    parser.add_argument("--kinds", default="qh3,aioquic,builtin")
    parser.add_argument("--browser", default="chromium", choices=["chromium", "firefox"])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    missing = missing_browser_piece(args.browser)
    if missing is not None:
        sys.exit(f"cannot run: {missing}")
    size = int(args.size_mib * 1024 * 1024)
    results = []
    print(
        f"{args.browser} <-> Python, /perf/1.0.0 {args.size_mib:g} MiB each way, "
        f"median of {args.runs} (twins: {IMPLEMENTATION})"
    )
    print("| server | upload MB/s | download MB/s | server CPU s/GB | byte-exact runs |")
    print("|---|---|---|---|---|")
    for kind in [k for k in args.kinds.split(",") if k]:
        runs = [trio.run(one_run, kind, size, args.browser) for _ in range(args.runs)]
        summary = summarize(kind, runs)
        results.append(summary)
        name = "py-libp2p built-in WebTransport" if kind == "builtin" else f"ours, {kind}"
        print(
            f"| {name} | {_fmt(summary['upload_MBps_median'])} "
            f"| {_fmt(summary['download_MBps_median'])} "
            f"| {_fmt(summary['server_cpu_s_per_GB_median'])} "
            f"| {summary['ok_runs']}/{args.runs} |",
            flush=True,
        )
        for run in runs:
            if not run["ok"]:
                print(f"    failed run: {run.get('error') or run}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "schema": SCHEMA,
                    "browser": args.browser,
                    "size_bytes": size,
                    "implementation": IMPLEMENTATION,
                    "python": platform.python_version(),
                    "results": results,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
