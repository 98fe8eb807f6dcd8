"""Micro-benchmark of the `_wire` twins (compiled vs pure Python). Not a test: it only measures.

Scenarios (ops/s = calls, or items for the readers):
  varint-encode     encode_varint over 1/2/4/8-byte values in equal shares
  varint-decode     decode_varint walking a buffer of the same mixed varints
  header-parse      parse_bidi_stream_start / parse_uni_stream_type on WT stream headers
  settings-encode   encode_settings of the server's WebTransport SETTINGS (9 entries)
  settings-decode   decode_settings of that payload
  frames-small      FrameReader fed a mixed frame stream in 7-byte fragments (ops = fragments)
  frames-data       FrameReader streaming DATA frames fed as 1200-byte packets (ops = packets)
  capsules-small    CapsuleReader fed close/drain/unknown capsules in 5-byte fragments

Each scenario runs --repeat times per twin; the best run counts (least disturbed by the machine).
Usage: python benchmarks/micro_wire.py [--repeat N] [--scale F] [--json PATH]
Run from the repository root after `python setup.py build_ext --inplace`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from py_libp2p_webtransport import _wire_py  # noqa: E402

try:
    from py_libp2p_webtransport import _wire_c
except ImportError:  # pragma: no cover - the benchmark still reports the pure twin
    _wire_c = None  # type: ignore[assignment]

MIXED_VALUES = [37, 15293, 494878333, 151288809941952652] * 250  # 1000 values, all four sizes
SERVER_SETTINGS = {
    0x1: 0,
    0x7: 0,
    0x8: 1,
    0x33: 1,
    0x2B603742: 1,
    0x2C7CF000: 1,
    0x14E9CD29: 1,
    0x21: 0,
    0xFFD277: 1,
}


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def varint_encode(mod: ModuleType, scale: float) -> int:
    encode = mod.encode_varint
    rounds = int(200 * scale)
    for _ in range(rounds):
        for value in MIXED_VALUES:
            encode(value)
    return rounds * len(MIXED_VALUES)


def varint_decode(mod: ModuleType, scale: float) -> int:
    decode = mod.decode_varint
    buf = b"".join(_wire_py.encode_varint(v) for v in MIXED_VALUES)
    rounds = int(200 * scale)
    n = len(buf)
    for _ in range(rounds):
        pos = 0
        while pos < n:
            _, pos = decode(buf, pos)
    return rounds * len(MIXED_VALUES)


def header_parse(mod: ModuleType, scale: float) -> int:
    bidi = [_wire_py.encode_stream_header(True, 4 * i) + b"data" for i in range(0, 4000, 7)]
    uni = [_wire_py.encode_stream_header(False, 4 * i) + b"data" for i in range(0, 4000, 7)]
    parse_bidi, parse_uni = mod.parse_bidi_stream_start, mod.parse_uni_stream_type
    rounds = int(200 * scale)
    for _ in range(rounds):
        for header in bidi:
            parse_bidi(header)
        for header in uni:
            parse_uni(header)
    return rounds * (len(bidi) + len(uni))


def settings_encode(mod: ModuleType, scale: float) -> int:
    encode = mod.encode_settings
    rounds = int(50_000 * scale)
    for _ in range(rounds):
        encode(SERVER_SETTINGS)
    return rounds


def settings_decode(mod: ModuleType, scale: float) -> int:
    decode = mod.decode_settings
    payload = _wire_py.encode_settings(SERVER_SETTINGS)
    rounds = int(50_000 * scale)
    for _ in range(rounds):
        decode(payload)
    return rounds


def _frame_stream() -> bytes:
    enc = _wire_py.encode_frame
    parts = [enc(0x04, _wire_py.encode_settings(SERVER_SETTINGS))]
    for i in range(200):
        parts.append(enc(0x01, b"h" * (20 + i % 30)))
        parts.append(enc(0x00, b"d" * (1 + i % 90)))
        parts.append(enc(0x21 + 0x1F * (i % 5), b"g" * (i % 4)))
    return b"".join(parts)


def frames_small(mod: ModuleType, scale: float) -> int:
    pieces = _chunks(_frame_stream(), 7)
    rounds = int(20 * scale)
    for _ in range(rounds):
        feed = mod.FrameReader().feed
        for piece in pieces:
            feed(piece)
    return rounds * len(pieces)


def frames_data(mod: ModuleType, scale: float) -> int:
    frame = _wire_py.encode_frame(0x00, bytes(16384))
    pieces = _chunks(frame * 64, 1200)
    rounds = int(20 * scale)
    for _ in range(rounds):
        feed = mod.FrameReader().feed
        for piece in pieces:
            feed(piece)
    return rounds * len(pieces)


def capsules_small(mod: ModuleType, scale: float) -> int:
    parts = []
    for i in range(300):
        parts.append(_wire_py.encode_close_session(i, "bye" * (i % 5)))
        parts.append(_wire_py.encode_capsule(0x3FFF, b"u" * (i % 40)))
        parts.append(_wire_py.encode_drain_session())
    pieces = _chunks(b"".join(parts), 5)
    rounds = int(20 * scale)
    for _ in range(rounds):
        feed = mod.CapsuleReader().feed
        for piece in pieces:
            feed(piece)
    return rounds * len(pieces)


SCENARIOS: dict[str, Callable[[ModuleType, float], int]] = {
    "varint-encode": varint_encode,
    "varint-decode": varint_decode,
    "header-parse": header_parse,
    "settings-encode": settings_encode,
    "settings-decode": settings_decode,
    "frames-small": frames_small,
    "frames-data": frames_data,
    "capsules-small": capsules_small,
}


def best_rate(
    fn: Callable[[ModuleType, float], int], mod: ModuleType, repeat: int, scale: float
) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        ops = fn(mod, scale)
        elapsed = time.perf_counter() - start
        best = max(best, ops / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per twin; the best counts")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the work per run")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()

    twins = [("python", _wire_py)] + ([("cython", _wire_c)] if _wire_c is not None else [])
    results: dict[str, dict[str, Any]] = {}
    print(f"{'scenario':<17} {'python ops/s':>14} {'cython ops/s':>14} {'C/Py':>7}")
    for name, fn in SCENARIOS.items():
        rates = {label: best_rate(fn, mod, args.repeat, args.scale) for label, mod in twins}
        ratio = rates["cython"] / rates["python"] if "cython" in rates else None
        results[name] = {"ops_per_s": rates, "ratio": ratio}
        c_text = f"{rates['cython']:>14,.0f}" if "cython" in rates else f"{'-':>14}"
        r_text = f"{ratio:>6.1f}x" if ratio is not None else f"{'-':>7}"
        print(f"{name:<17} {rates['python']:>14,.0f} {c_text} {r_text}")

    if args.json:
        report = {
            "benchmark": "micro_wire",
            "python": platform.python_version(),
            "machine": platform.machine(),
            "repeat": args.repeat,
            "scale": args.scale,
            "results": results,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
