"""``py-libp2p-webtransport perf MULTIADDR``: measure a libp2p ``/perf/1.0.0`` server.

The client dials MULTIADDR (which must end in ``/p2p/<peer id>``) once, then does ``--runs``
perf exchanges, each on a new stream of that one connection, and prints a table (stdout) or, with
``--json``, one JSON object per run, one per line. Sizes accept suffixes: ``k``/``M``/``G``/``T``
and ``KiB``/``MiB``/``GiB``/``TiB`` are powers of 1024, ``kB``/``MB``/``GB``/``TB`` powers of 1000
(as dd does). Standalone: ``python -m py_libp2p_webtransport.cli.perf MULTIADDR [options]``.

``--transport`` (default ``auto``: from the address):

- ``webtransport``: this package's transport (auto for ``/webtransport`` addresses); ``--engine``
  picks its QUIC engine.
- ``quic-v1``: this package's QUIC transport (auto for ``/quic-v1`` without ``/webtransport``);
  ``--engine`` picks its engine.
- ``libp2p-webtransport``: py-libp2p's built-in WebTransport, for comparison.
- ``quic``: py-libp2p's QUIC, for comparison.
- ``tcp``: py-libp2p's TCP with Noise and Yamux (auto for ``/tcp``).

JSON keys of each run (stable; seconds and MB = 10**6 bytes; timing rules in ``perf.py``):

``run`` (1-based), ``runs``, ``transport``, ``engine`` (null unless ours), ``address``,
``peer_id``, ``connect_seconds`` (the one ``host.connect``, including py-libp2p's fixed ~250 ms
wait), ``ok``, ``error`` (null or a message), then the :class:`~.perf.PerfResult` keys:
``upload_bytes``, ``download_bytes``, ``stream_open_seconds``, ``upload_seconds``,
``time_to_first_byte_seconds``, ``download_seconds``, ``total_seconds``, ``upload_mb_per_s``,
``download_mb_per_s`` (all null when the run failed, except the two requested byte counts).

Exit status: 0 when every run succeeded, 1 when one failed, 2 for bad arguments or a failed dial.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

from ..apps.perf import PerfResult, run_perf

__all__ = [
    "TRANSPORTS",
    "add_perf_parser",
    "build_host",
    "main",
    "parse_size",
    "run_perf_command",
    "transport_for_address",
]

TRANSPORTS = ("auto", "webtransport", "quic-v1", "libp2p-webtransport", "quic", "tcp")
PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # below this a bar would only flicker
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"64MiB"`` → 67108864, ``"1G"`` → 2**30, ``"1GB"`` → 10**9, ``"123"`` → 123.

    Raises ``argparse.ArgumentTypeError`` (a ValueError) for anything else, including
    fractions that do not make a whole number of bytes.
    """
    match = _SIZE_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1000, 64MiB, 1G, 10MB)")
    value = float(match.group(1)) * _UNITS[unit]
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number of bytes: {text!r}")
    return int(value)


def transport_for_address(addr: Multiaddr) -> str:
    """The transport ``auto`` picks for ``addr``; ValueError when none fits."""
    names = {p.name for p in addr.protocols()}
    if "webtransport" in names:
        return "webtransport"
    if "quic-v1" in names:
        return "quic-v1"
    if "tcp" in names:
        return "tcp"
    raise ValueError(f"no transport for {addr}: expected /webtransport, /quic-v1 or /tcp")


def build_host(
    transport: str,
    *,
    engine: str | None = None,
    key_pair: KeyPair | None = None,
    listen_addrs: Sequence[Multiaddr] = (),
    metrics: bool = False,
) -> IHost:
    """A py-libp2p host that speaks ``transport`` (one of TRANSPORTS but ``auto``); ``metrics``
    turns ours's Prometheus metrics on (``benchmarks/compare.py``'s ``-metrics`` cases).

    ``webtransport`` needs this package's transport; ImportError when it is not installed.
    """
    kp = key_pair or create_new_key_pair()
    listen = list(listen_addrs)
    if transport == "webtransport":
        # Imported by name: the transport lands on main after this module was written.
        config_mod = importlib.import_module("..config", __package__)
        transport_mod = importlib.import_module("..transport", __package__)
        config_kw: dict[str, Any] = {} if engine is None else {"engine": engine}
        if metrics:
            config_kw["metrics"] = True
        config = config_mod.WebTransportConfig(**config_kw)
        ours = transport_mod.WebTransportTransport(kp.private_key, config)
        return new_host(key_pair=kp, transports=[ours], listen_addrs=listen)
    if transport == "quic-v1":
        config_mod = importlib.import_module("..config", __package__)
        quic_mod = importlib.import_module("..quic_transport", __package__)
        quic_kw: dict[str, Any] = {} if engine is None else {"engine": engine}
        quic = quic_mod.QuicTransport(kp.private_key, config_mod.WebTransportConfig(**quic_kw))
        return new_host(key_pair=kp, transports=[quic], listen_addrs=listen)
    if transport == "libp2p-webtransport":
        return new_host(key_pair=kp, enable_webtransport=True, listen_addrs=listen)
    if transport == "quic":
        return new_host(key_pair=kp, enable_quic=True, listen_addrs=listen)
    if transport == "tcp":
        return new_host(key_pair=kp, listen_addrs=listen)
    raise ValueError(f"unknown transport {transport!r}; expected one of {TRANSPORTS[1:]}")


def add_perf_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``perf`` command to an ``argparse`` subparsers object (from ``add_subparsers``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "perf",
        help="measure a libp2p /perf/1.0.0 server",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    _configure(parser)
    return parser


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("multiaddr", help="server address ending in /p2p/<peer id>")
    parser.add_argument("--upload-bytes", type=parse_size, default=parse_size("64MiB"))
    parser.add_argument("--download-bytes", type=parse_size, default=parse_size("64MiB"))
    parser.add_argument("--runs", type=int, default=1, help="perf exchanges (default 1)")
    parser.add_argument("--transport", choices=TRANSPORTS, default="auto")
    parser.add_argument(
        "--engine", choices=("qh3", "aioquic"), default=None, help="QUIC engine of ours"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed for the dial and each run"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    parser.set_defaults(func=run_perf_command)


class _ProgressBar:
    """A one-line bar on a terminal stream, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, upload: int, download: int) -> None:
        self._stream = stream
        self._total = upload + download
        self._up, self._down = upload, download
        self._last = 0.0

    def __call__(self, uploaded: int, downloaded: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and uploaded + downloaded < self._total:
            return
        self._last = now
        filled = int(30 * (uploaded + downloaded) / self._total)
        mib = 1024 * 1024
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] up {uploaded / mib:.1f}/{self._up / mib:.1f}"
            f" MiB  down {downloaded / mib:.1f}/{self._down / mib:.1f} MiB "
        )
        self._stream.flush()

    def clear(self) -> None:
        self._stream.write("\r" + " " * 79 + "\r")
        self._stream.flush()


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The human-readable table of run records (the JSON objects), with a median row."""
    header = ("run", "up MiB", "up MB/s", "TTFB ms", "down MiB", "down MB/s", "total s", "error")
    lines = [header]
    mib = 1 / (1024 * 1024)
    for r in rows:
        lines.append(
            (
                str(r["run"]),
                _fmt(r["upload_bytes"], mib),
                _fmt(r["upload_mb_per_s"]),
                _fmt(r["time_to_first_byte_seconds"], 1000),
                _fmt(r["download_bytes"], mib),
                _fmt(r["download_mb_per_s"]),
                _fmt(r["total_seconds"], 1, 3),
                r["error"] or "",
            )
        )
    ok = [r for r in rows if r["ok"]]
    if len(ok) > 1:

        def med(key: str) -> float | None:
            values = [r[key] for r in ok if r[key] is not None]
            return statistics.median(values) if values else None

        lines.append(
            (
                "median",
                "",
                _fmt(med("upload_mb_per_s")),
                _fmt(med("time_to_first_byte_seconds"), 1000),
                "",
                _fmt(med("download_mb_per_s")),
                _fmt(med("total_seconds"), 1, 3),
                "",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


async def _run(args: argparse.Namespace, emit: Callable[[dict[str, Any]], None]) -> int:
    addr = Multiaddr(args.multiaddr)
    info = info_from_p2p_addr(addr)
    transport = args.transport if args.transport != "auto" else transport_for_address(addr)
    try:
        host = build_host(transport, engine=args.engine)
    except ImportError as exc:
        print(f"error: transport {transport!r} is not available: {exc}", file=sys.stderr)
        return 2
    base = {
        "runs": args.runs,
        "transport": transport,
        "engine": args.engine if transport == "webtransport" else None,
        "address": str(addr),
        "peer_id": str(info.peer_id),
    }
    failed = 0
    async with host.run(listen_addrs=[]):
        t0 = time.perf_counter()
        try:
            with trio.fail_after(args.timeout):
                await host.connect(info)
        except Exception as exc:  # any dial failure ends the command with a message
            print(f"error: cannot connect to {addr}: {exc!r}", file=sys.stderr)
            return 2
        base["connect_seconds"] = time.perf_counter() - t0
        for run in range(1, args.runs + 1):
            record = dict(base, run=run, ok=True, error=None)
            bar = _progress_bar(args)
            try:
                with trio.fail_after(args.timeout):
                    result = await run_perf(
                        host, info.peer_id, args.upload_bytes, args.download_bytes, on_progress=bar
                    )
                record.update(result.as_dict())
            except Exception as exc:  # reported per run; the next run may still work
                failed += 1
                record.update(_failed_result(args))
                record.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            finally:
                if bar is not None:
                    bar.clear()
            emit(record)
    return 1 if failed else 0


def _failed_result(args: argparse.Namespace) -> dict[str, object]:
    """The PerfResult keys of a failed run: the requested sizes, every measurement null."""
    keys = PerfResult(0, 0, 0, 0, None, 0, 0).as_dict()
    out: dict[str, object] = dict.fromkeys(keys)
    out.update(upload_bytes=args.upload_bytes, download_bytes=args.download_bytes)
    return out


def _progress_bar(args: argparse.Namespace) -> _ProgressBar | None:
    total = args.upload_bytes + args.download_bytes
    if total < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        return None
    return _ProgressBar(sys.stderr, args.upload_bytes, args.download_bytes)


def run_perf_command(args: argparse.Namespace) -> int:
    """Run the ``perf`` command from parsed arguments; returns the exit status."""
    if args.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return 2
    try:
        addr = Multiaddr(args.multiaddr)
        info_from_p2p_addr(addr)
        if args.transport == "auto":
            transport_for_address(addr)
    except Exception as exc:  # multiaddr raises several unrelated types for bad text
        print(f"error: bad address {args.multiaddr!r}: {exc}", file=sys.stderr)
        return 2

    rows: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        rows.append(record)
        if args.json:
            print(json.dumps(record, sort_keys=True), flush=True)

    status = trio.run(_run, args, emit)
    if not args.json and rows:
        print(format_table(rows))
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m py_libp2p_webtransport.cli.perf MULTIADDR ...``."""
    parser = argparse.ArgumentParser(prog="py-libp2p-webtransport perf", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _configure(parser)
    args = parser.parse_args(argv)
    return run_perf_command(args)


if __name__ == "__main__":
    sys.exit(main())
