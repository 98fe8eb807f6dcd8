"""Micro-benchmark of the `_mux` twins (compiled vs pure Python). Not a test: it only measures.

Scenarios:
  small-chunks   100k x 100 B appends, 4 KiB reads whenever 4 KiB are buffered (QUIC-frame sized
                 input read by a libp2p stream reader)
  big-chunks     1 MiB appends, each drained by 64 KiB reads
  tiny-chunks    100k x 1 B appends, then one read() of everything (the worst case for a buffer
                 that joins or copies per append)

Usage: python benchmarks/micro_mux.py [--repeat N] [--scale F] [--json PATH]
Run from the repository root after `python setup.py build_ext --inplace`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from py_libp2p_webtransport import _mux_py  # noqa: E402

try:
    from py_libp2p_webtransport import _mux_c
except ImportError:  # pragma: no cover - benchmark still reports the pure twin
    _mux_c = None  # type: ignore[assignment]


def small_chunks(mod: ModuleType, scale: float) -> tuple[int, int]:
    count = int(100_000 * scale)
    chunk = b"x" * 100
    buf = mod.RecvBuffer()
    append, read = buf.append, buf.read
    got = 0
    for _ in range(count):
        append(chunk)
        if buf.size >= 4096:
            got += len(read(4096))
    got += len(read())
    assert got == count * 100
    return got, count


def big_chunks(mod: ModuleType, scale: float) -> tuple[int, int]:
    count = max(1, int(64 * scale))
    chunk = bytes(1024 * 1024)
    buf = mod.RecvBuffer()
    got = 0
    ops = 0
    for _ in range(count):
        buf.append(chunk)
        while buf.size:
            got += len(buf.read(65536))
            ops += 1
    assert got == count * len(chunk)
    return got, ops + count


def tiny_chunks(mod: ModuleType, scale: float) -> tuple[int, int]:
    count = int(100_000 * scale)
    one = b"y"
    buf = mod.RecvBuffer()
    append = buf.append
    for _ in range(count):
        append(one)
    got = len(buf.read())
    assert got == count
    return got, count


SCENARIOS: dict[str, Callable[[ModuleType, float], tuple[int, int]]] = {
    "small-chunks": small_chunks,
    "big-chunks": big_chunks,
    "tiny-chunks": tiny_chunks,
}


def measure(fn: Callable[[], tuple[int, int]], repeat: int) -> dict[str, float]:
    best = float("inf")
    nbytes = ops = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        nbytes, ops = fn()
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "mb_per_s": nbytes / best / 1e6, "ops_per_s": ops / best}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case; the best is kept")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the workload sizes")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()

    twins = [("python", _mux_py)] + ([("cython", _mux_c)] if _mux_c is not None else [])
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "scale": args.scale,
        "repeat": args.repeat,
        "scenarios": {},
    }
    print(f"{'scenario':<14} {'twin':<7} {'MB/s':>10} {'ops/s':>12}  ratio C/Py")
    for name, scenario in SCENARIOS.items():
        row: dict[str, Any] = {}
        for label, mod in twins:
            row[label] = measure(functools.partial(scenario, mod, args.scale), args.repeat)
        if "cython" in row:
            row["ratio"] = row["python"]["seconds"] / row["cython"]["seconds"]
        results["scenarios"][name] = row
        for label, _ in twins:
            r = row[label]
            ratio = f"{row['ratio']:.2f}x" if label == "cython" and "ratio" in row else ""
            print(f"{name:<14} {label:<7} {r['mb_per_s']:>10.1f} {r['ops_per_s']:>12.0f}  {ratio}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
