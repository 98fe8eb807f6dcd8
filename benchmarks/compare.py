"""Side-by-side benchmark: this transport against py-libp2p's own transports (not a test).

    python setup.py build_ext --inplace          # the compiled twins, for the compiled cases
    python benchmarks/compare.py                 # full run: 3 interleaved runs, ~15-30 min
    python benchmarks/compare.py --quick         # smoke run: tiny sizes, 1 run, < 2 min
    python benchmarks/compare.py --json out.json --markdown out.md --cases ours-qh3,libp2p-tcp

Every case runs as two processes (``benchmarks/peer.py serve`` and ``peer.py client``, loopback
only), started afresh for each run; runs are interleaved (run 1 of every case, then run 2, ...)
and figures are medians over the runs. A process that outlives its time budget is killed and
its run reported as failed; a case whose transport cannot be built (ours before it is
installed, compiled twins not built) is reported as "unavailable", never dropped.

Cases: ``ours-{qh3,aioquic}`` (compiled twins) and ``ours-{qh3,aioquic}-pure``
(``PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS=1`` in both processes); ``ours-{qh3,aioquic}-metrics``
(compiled, ``WebTransportConfig(metrics=True)`` in both processes: the cost of the Prometheus
metrics, compared with ``ours-*`` of the same run, e.g. ``--cases ours-qh3,ours-qh3-metrics``);
``ours-quic-{qh3,aioquic}`` (our ``/quic-v1`` transport: libp2p over QUIC, no HTTP/3, no Noise);
``libp2p-webtransport``, ``libp2p-quic``, ``libp2p-tcp`` (py-libp2p 0.8's built-in transports;
TCP is Noise + Yamux);
``engine-bare-{qh3,aioquic}`` (``benchmarks/engine_bare.py`` when it exists: one QUIC stream, no
HTTP/3, no libp2p, client to server only, so only the upload figures).

Workloads, per client process, on one connection opened with ``host.connect`` (untimed):

- ``upload``/``download``: one /perf/1.0.0 exchange of SIZE bytes (64 MiB). Upload is timed until
  the server has read everything (see ``py_libp2p_webtransport/perf.py``). CPU is user+system
  time of both processes from ``/proc/PID/stat``; peak RSS is ``VmHWM`` after resetting it
  through ``/proc/PID/clear_refs`` just before the transfer (so it includes the interpreter and
  libraries, ~90 MB for py-libp2p alone; the raw client JSON also has ``*_rss_before_mb``).
- ``ping``: 1000 round trips of 32 bytes on one ``/ipfs/ping/1.0.0`` stream; median and p99.
- ``dial``: 50 times, a fresh connection: ``swarm.dial_addr(addr, peer)`` (transport dial,
  security, muxer, swarm registration; below ``host.connect``/``dial_peer``, which add a fixed
  250 ms wait), then a new ``/echo/1.0.0`` stream (protocol negotiation) and a 1-byte echo; the
  median of those times.
- ``streams``: 1000 × (new ``/echo/1.0.0`` stream + 1-byte echo + close), sequential; seconds.
- ``idle``: 10 more client hosts in the client process each hold one idle connection; CPU of
  both processes over 5 s after 1 s of settling, as percent of one core.

JSON (``--json PATH``), schema ``py-libp2p-webtransport/compare/1``:

``{"schema", "started" (ISO 8601 UTC), "machine": {"python", "platform", "cpus"},
"config": {"runs", "size", "pings", "dials", "streams", "idle_conns", "idle_seconds",
"workload_timeout", "quick"}, "baseline": "ours-qh3", "metrics": {METRIC: {"unit",
"better": "higher"|"lower", "description"}}, "cases": {CASE: {"transport", "engine",
"pure_python", "status": "ok"|"partial"|"failed"|"unavailable", "reason" (null or text),
"notes": [text: failed runs and workloads, failed dial attempts],
"runs": [{"run", "status", "error", "seconds", "client": raw peer.py output or null}],
"medians": {METRIC: number|null}, "ratios": {METRIC: number|null}}}}``

where ratio = the case's median / the baseline's median (so > 1 is better for "higher" metrics
and worse for "lower" ones). METRICs: ``upload_mb_s``, ``download_mb_s``, ``upload_cpu_ms_per_mib``,
``download_cpu_ms_per_mib``, ``client_peak_rss_mb``, ``server_peak_rss_mb``, ``ping_median_ms``,
``ping_p99_ms``, ``dial_median_ms``, ``streams_seconds``, ``idle_cpu_percent``.
The Markdown table (``--markdown PATH``, and stdout) has one row per case, one column per metric.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER = HERE / "peer.py"
ENGINE_BARE = HERE / "engine_bare.py"
SCHEMA = "py-libp2p-webtransport/compare/1"
BASELINE = "ours-qh3"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    transport: str  # a peer.py transport, or "engine-bare"
    engine: str | None = None
    pure_python: bool = False
    metrics: bool = False  # WebTransportConfig(metrics=True) in both processes


CASES = [
    Case("ours-qh3", "webtransport", "qh3"),
    Case("ours-qh3-pure", "webtransport", "qh3", pure_python=True),
    Case("ours-aioquic", "webtransport", "aioquic"),
    Case("ours-aioquic-pure", "webtransport", "aioquic", pure_python=True),
    Case("ours-qh3-metrics", "webtransport", "qh3", metrics=True),
    Case("ours-aioquic-metrics", "webtransport", "aioquic", metrics=True),
    Case("ours-quic-qh3", "quic-v1", "qh3"),
    Case("ours-quic-aioquic", "quic-v1", "aioquic"),
    Case("libp2p-webtransport", "libp2p-webtransport"),
    Case("libp2p-quic", "quic"),
    Case("libp2p-tcp", "tcp"),
    Case("engine-bare-qh3", "engine-bare", "qh3"),
    Case("engine-bare-aioquic", "engine-bare", "aioquic"),
]

# metric -> (unit, better, description); values come from extract()
METRICS: dict[str, tuple[str, str, str, str]] = {
    # metric: (unit, better, table heading, description); values come from extract()
    "upload_mb_s": ("MB/s", "higher", "up MB/s", "perf upload, until the server has read all"),
    "download_mb_s": ("MB/s", "higher", "down MB/s", "perf download"),
    "upload_cpu_ms_per_mib": ("ms/MiB", "lower", "up CPU ms/MiB", "CPU, both processes"),
    "download_cpu_ms_per_mib": ("ms/MiB", "lower", "down CPU ms/MiB", "CPU, both processes"),
    "client_peak_rss_mb": ("MB", "lower", "client RSS MB", "client peak RSS, transfers"),
    "server_peak_rss_mb": ("MB", "lower", "server RSS MB", "server peak RSS, transfers"),
    "ping_median_ms": ("ms", "lower", "ping p50 ms", "ping RTT, median"),
    "ping_p99_ms": ("ms", "lower", "ping p99 ms", "ping RTT, 99th percentile"),
    "dial_median_ms": ("ms", "lower", "dial ms", "dial_addr + new stream + 1-byte echo, median"),
    "streams_seconds": ("s", "lower", "streams s", "N x (open + 1-byte echo + close)"),
    "idle_cpu_percent": ("% core", "lower", "idle CPU %", "both processes, idle connections"),
}


def extract(workloads: dict[str, Any]) -> dict[str, float | None]:
    """The metrics of one run from peer.py's ``workloads`` object (None where missing/failed)."""

    def get(name: str, key: str) -> float | None:
        w = workloads.get(name) or {}
        value = w.get(key)
        return float(value) if isinstance(value, int | float) else None

    def peak(side: str) -> float | None:
        values = [get(n, f"{side}_peak_rss_mb") for n in ("upload", "download")]
        present = [v for v in values if v is not None]
        return max(present) if present else None

    return {
        "upload_mb_s": get("upload", "mb_per_s"),
        "download_mb_s": get("download", "mb_per_s"),
        "upload_cpu_ms_per_mib": get("upload", "cpu_ms_per_mib"),
        "download_cpu_ms_per_mib": get("download", "cpu_ms_per_mib"),
        "client_peak_rss_mb": peak("client"),
        "server_peak_rss_mb": peak("server"),
        "ping_median_ms": get("ping", "median_ms"),
        "ping_p99_ms": get("ping", "p99_ms"),
        "dial_median_ms": get("dial", "median_ms"),
        "streams_seconds": get("streams", "seconds"),
        "idle_cpu_percent": get("idle", "cpu_percent"),
    }


# --- running one case --------------------------------------------------------------------------


class RunFailed(Exception):
    pass


class Unavailable(Exception):
    pass


def _env(case: Case) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS", None)
    if case.pure_python:
        env["PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _peer_args(case: Case) -> list[str]:
    args = ["--transport", case.transport]
    if case.engine:
        args += ["--engine", case.engine]
    if case.metrics:
        args.append("--metrics")
    return args


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise RunFailed(f"server printed nothing within {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        raise RunFailed(f"server exited with status {proc.wait(5)} before printing its address")
    return dict(json.loads(line))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def run_peer_case(case: Case, cfg: argparse.Namespace) -> dict[str, Any]:
    """One run of a libp2p case: a server process, a client process; the client's JSON."""
    env = _env(case)
    server = subprocess.Popen(
        [sys.executable, str(PEER), "serve", *_peer_args(case)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    try:
        hello = _read_line(server, 60)
        if "unavailable" in hello:
            raise Unavailable(hello["unavailable"])
        if case.transport == "webtransport":
            want = "python" if case.pure_python else "cython"
            if hello.get("implementation") != want:
                raise Unavailable(
                    f"needs the {want} twins, got {hello.get('implementation')}"
                    " (python setup.py build_ext --inplace)"
                )
        workloads = cfg.workloads.split(",")
        budget = cfg.workload_timeout * len(workloads) + 60
        client_cmd = [
            sys.executable,
            str(PEER),
            "client",
            *_peer_args(case),
            "--addr",
            hello["addr"],
            "--server-pid",
            str(hello["pid"]),
            "--workloads",
            cfg.workloads,
            "--size",
            str(cfg.size),
            "--pings",
            str(cfg.pings),
            "--dials",
            str(cfg.dials),
            "--streams",
            str(cfg.streams),
            "--idle-conns",
            str(cfg.idle_conns),
            "--idle-seconds",
            str(cfg.idle_seconds),
            "--timeout",
            str(cfg.workload_timeout),
        ]
        try:
            done = subprocess.run(
                client_cmd, capture_output=True, env=env, cwd=ROOT, timeout=budget, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise RunFailed(f"client still running after {budget:.0f} s, killed") from exc
        lines = done.stdout.decode().strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = done.stderr.decode().strip().splitlines()[-1:] or ["no output"]
            raise RunFailed(f"client exited with status {done.returncode}: {tail[0]}")
        result = dict(json.loads(lines[-1]))
        if "unavailable" in result:
            raise Unavailable(result["unavailable"])
        return result
    finally:
        if server.stdin is not None:
            server.stdin.close()  # tells the server to stop
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            _kill(server)


def run_bare_case(case: Case, cfg: argparse.Namespace) -> dict[str, Any]:
    """One run of ``engine_bare.py`` (its own two processes), mapped onto the upload workload."""
    if not ENGINE_BARE.exists():
        raise Unavailable("benchmarks/engine_bare.py does not exist")
    mib = max(1, cfg.size // MiB)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bare.json"
        cmd = [sys.executable, str(ENGINE_BARE), "--engine", str(case.engine), "--mib", str(mib)]
        cmd += ["--json", str(out)]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                env=_env(case),
                cwd=ROOT,
                timeout=cfg.workload_timeout + 60,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RunFailed("engine_bare.py timed out, killed") from exc
        if done.returncode != 0 or not out.exists():
            err = done.stderr.decode().strip().splitlines()[-1:] or ["no output"]
            if "invalid choice" in err[0]:
                raise Unavailable(f"engine {case.engine} is not installed")
            raise RunFailed(f"engine_bare.py exited with status {done.returncode}: {err[0]}")
        bare = json.loads(out.read_text())[0]
    gb_to_mib = MiB / 1e9  # s/GB -> s/MiB
    cpu_ms = (bare["client_cpu_s_per_gb"] + bare["server_cpu_s_per_gb"]) * gb_to_mib * 1000
    return {
        "implementation": None,
        "workloads": {
            "upload": {
                "bytes": mib * MiB,
                "mb_per_s": bare["mb_per_s"],
                "cpu_ms_per_mib": cpu_ms,
                "engine_bare": bare,
            }
        },
    }


# --- the whole comparison ----------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _notes(runs: list[dict[str, Any]]) -> list[str]:
    """What went wrong short of failing a run: failed workloads, dials that failed."""
    notes: list[str] = []
    failed_dials = attempted = 0
    for r in runs:
        if r["status"] != "ok":
            notes.append(f"run {r['run']} failed: {r['error']}")
            continue
        for name, w in r["client"]["workloads"].items():
            if "error" in w:
                notes.append(f"run {r['run']} {name}: {w['error']}")
        dial = r["client"]["workloads"].get("dial") or {}
        if "failures" in dial:
            failed_dials += dial["failures"]
            attempted += dial["failures"] + dial["count"]
    if failed_dials:
        notes.append(f"{failed_dials} of {attempted} dials failed")
    return notes


def summarise(results: dict[str, Any]) -> None:
    """Fill in each case's status, medians and ratios (in place)."""
    for case in results["cases"].values():
        if case["status"] == "unavailable":
            case["medians"] = dict.fromkeys(METRICS)
            case["notes"] = []
            continue
        ok_runs = [r for r in case["runs"] if r["status"] == "ok"]
        per_run = [extract(r["client"]["workloads"]) for r in ok_runs]
        case["medians"] = {m: _median([run[m] for run in per_run]) for m in METRICS}
        case["notes"] = _notes(case["runs"])
        if not ok_runs:
            case["status"] = "failed"
        else:  # the notes name every failed run, workload and dial attempt
            case["status"] = "partial" if case["notes"] else "ok"
    base = results["cases"].get(results["baseline"], {}).get("medians", {})
    for case in results["cases"].values():
        case["ratios"] = {
            m: (v / base[m] if v is not None and base.get(m) else None)
            for m, v in case["medians"].items()
        }


def _cell(value: float | None, ratio: float | None, baseline: bool) -> str:
    if value is None:
        return "—"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    text = f"{value:.{digits}f}"
    if ratio is not None and not baseline:
        text += f" ({ratio:.2g}×)"
    return text


def _short(note: str, limit: int = 80) -> str:
    return note if len(note) <= limit else note[: limit - 1] + "…"


def markdown(results: dict[str, Any]) -> str:
    """One row per case, one column per metric; ratios against the baseline in parentheses."""
    cfg = results["config"]
    heads = [METRICS[m][2] + (" ↑" if METRICS[m][1] == "higher" else " ↓") for m in METRICS]
    lines = [
        f"Medians of {cfg['runs']} interleaved run(s); size {cfg['size'] / MiB:g} MiB, "
        f"{cfg['pings']} pings, {cfg['dials']} dials, {cfg['streams']} streams, "
        f"{cfg['idle_conns']} idle connections over {cfg['idle_seconds']:g} s. "
        f"(×) = ratio to `{results['baseline']}`; ↑ higher is better, ↓ lower is better. "
        "CPU: client + server; RSS includes the interpreter and py-libp2p. "
        f"{results['machine']['platform']}, "
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}.",
        "",
        "| case | status | " + " | ".join(heads) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for name, case in results["cases"].items():
        status = case["status"]
        if case.get("reason"):
            status += f": {case['reason']}"
        elif case.get("notes"):
            status += " (" + "; ".join(_short(n) for n in case["notes"]) + ")"
        cells = [
            _cell(case["medians"][m], case["ratios"][m], name == results["baseline"])
            for m in METRICS
        ]
        lines.append(f"| {name} | {status} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 run (smoke test)")
    parser.add_argument(
        "--cases", help="comma-separated subset, default all: " + ", ".join(c.name for c in CASES)
    )
    parser.add_argument("--size", type=int, default=64 * MiB, help="bytes per transfer")
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--dials", type=int, default=50)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--idle-conns", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--workload-timeout", type=float, default=240.0)
    parser.add_argument("--workloads", default="upload,download,ping,dial,streams,idle")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--markdown", metavar="PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.size, args.pings, args.dials = 1, 1 * MiB, 50, 5
        args.streams, args.idle_conns, args.idle_seconds = 50, 3, 1.0
        args.workload_timeout = min(args.workload_timeout, 30.0)
    known = {c.name for c in CASES}
    if args.cases:
        unknown = set(args.cases.split(",")) - known
        if unknown:
            parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [c for c in CASES if not args.cases or c.name in args.cases.split(",")]
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "config": {
            "runs": args.runs,
            "size": args.size,
            "pings": args.pings,
            "dials": args.dials,
            "streams": args.streams,
            "idle_conns": args.idle_conns,
            "idle_seconds": args.idle_seconds,
            "workload_timeout": args.workload_timeout,
            "quick": args.quick,
        },
        "baseline": BASELINE,
        "metrics": {
            m: {"unit": u, "better": b, "description": d} for m, (u, b, _, d) in METRICS.items()
        },
        "cases": {
            c.name: {
                "transport": c.transport,
                "engine": c.engine,
                "pure_python": c.pure_python,
                "status": "pending",
                "reason": None,
                "runs": [],
            }
            for c in chosen
        },
    }
    for run in range(1, args.runs + 1):  # interleaved: every case once per round
        for case in chosen:
            record = results["cases"][case.name]
            if record["status"] == "unavailable":
                continue
            t0 = time.monotonic()
            entry: dict[str, Any] = {"run": run, "status": "ok", "error": None, "client": None}
            try:
                runner = run_bare_case if case.transport == "engine-bare" else run_peer_case
                entry["client"] = runner(case, args)
            except Unavailable as exc:
                record["status"], record["reason"] = "unavailable", str(exc)
                print(f"[run {run}/{args.runs}] {case.name}: unavailable ({exc})", file=sys.stderr)
                continue
            except (RunFailed, OSError, ValueError) as exc:
                entry["status"], entry["error"] = "failed", str(exc)
            entry["seconds"] = time.monotonic() - t0
            record["runs"].append(entry)
            errors = [
                f"{name}: {w['error']}"
                for name, w in ((entry["client"] or {}).get("workloads") or {}).items()
                if "error" in w
            ]
            note = entry["error"] or "; ".join(errors) or "ok"
            print(
                f"[run {run}/{args.runs}] {case.name}: {note} ({entry['seconds']:.1f} s)",
                file=sys.stderr,
            )
    summarise(results)
    table = markdown(results)
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
