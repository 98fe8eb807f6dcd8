"""Shared command line and JSON result for the independent interop client programs.

These programs run under a separate Python >= 3.12 virtualenv (see
scripts/setup-interop-clients.sh), so this module uses only the standard library and must not import
the project package.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT = 10.0
# Extra time the programs may spend closing after the main budget has run out.
CLOSE_GRACE = 2.0


def build_parser(description: str) -> argparse.ArgumentParser:
    """Return the argument parser every client program accepts."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--url", required=True, help="https://HOST:PORT/path?query of the WebTransport server"
    )
    parser.add_argument(
        "--echo-bidi",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="open a bidi stream, send N random bytes + FIN, read the echo, compare (repeatable)",
    )
    parser.add_argument(
        "--accept-bidi",
        type=int,
        nargs="?",
        const=1,
        default=0,
        metavar="K",
        help="wait for K server-opened bidi streams and echo each back (default K=1)",
    )
    parser.add_argument(
        "--expect-status",
        type=int,
        default=200,
        help="CONNECT status the server should answer; non-2xx: the session must be rejected",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="overall budget in seconds"
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.3,
        help="seconds to keep the connection up after the last action (lets the last echo leave)",
    )
    parser.add_argument("--verbose", action="store_true", help="log protocol events to stderr")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject arguments that would make the run meaningless."""
    if not args.url.startswith("https://"):
        parser.error("--url must start with https://")
    if any(n < 0 for n in args.echo_bidi) or args.accept_bidi < 0:
        parser.error("sizes and counts must be >= 0")
    if not 0 <= args.linger < args.timeout:
        parser.error("--linger must be in [0, --timeout)")
    if not 0 < args.timeout <= 600:
        parser.error("--timeout must be in (0, 600]")
    if args.expect_status != 200 and (args.echo_bidi or args.accept_bidi):
        parser.error("stream actions need --expect-status 200")


@dataclass
class Result:
    """The single JSON line a client program prints."""

    client: str
    version: str
    url: str
    expect_status: int
    ok: bool = False
    connected: bool = False
    status: int | None = None
    error: str | None = None
    phase: str = "start"
    protocol: str | None = None
    echoes: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    observed: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def fail(self, error: str) -> None:
        """Record the first error only: later ones are usually consequences of it."""
        if self.error is None:
            self.error = f"{self.phase}: {error}"

    def finish(self, actions_ok: bool) -> None:
        """Decide `ok` from what was observed and what was expected."""
        if self.expect_status == 200:
            self.ok = self.error is None and self.connected and self.status == 200 and actions_ok
        else:
            self.ok = not self.connected and self.status == self.expect_status
            if not self.ok and self.error is None:
                self.error = f"expected status {self.expect_status}, observed {self.status}"

    def emit(self) -> None:
        """Print the JSON line and exit at once (teardown could hang on library threads)."""
        if not _EMIT_LOCK.acquire(blocking=False):
            # The other thread (main or watchdog) is already reporting and will exit the process.
            threading.Event().wait()
        self.elapsed = round(time.monotonic() - self.started, 3)
        payload = {k: v for k, v in self.__dict__.items() if k != "started"}
        sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if self.ok else 1)


_EMIT_LOCK = threading.Lock()
_WATCHDOG_FILES: list[Any] = []  # keeps faulthandler's file alive


def start_watchdog(result: Result, seconds: float) -> None:
    """Report a timeout and exit if the program is still running after `seconds`.

    A Python thread prints the JSON result. If a native call spins while holding the GIL, that
    thread cannot run, so faulthandler's C-level watchdog ends the process two seconds later (with a
    traceback on stderr and no JSON line, which the test harness reports as a hang).
    """
    # A duplicate of the real stderr: the traceback must not vanish into a diverted fd 2.
    _WATCHDOG_FILES.append(os.fdopen(os.dup(2), "w"))
    faulthandler.dump_traceback_later(seconds + 2.0, exit=True, file=_WATCHDOG_FILES[-1])

    def expire() -> None:
        result.fail(f"timed out after {seconds:.1f} s (watchdog)")
        result.ok = False
        result.emit()

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def compare_echo(sent: bytes, received: bytes) -> dict[str, Any]:
    """Describe one echo exchange."""
    return {"sent": len(sent), "received": len(received), "match": sent == received}


def parse_varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """Decode a QUIC variable-length integer at `pos`; None when `buf` is too short."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    length = 1 << (first >> 6)
    if pos + length > len(buf):
        return None
    value = first & 0x3F
    for b in buf[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


def parse_settings_from_control_stream(data: bytes) -> dict[str, int] | None:
    """Return the SETTINGS of an HTTP/3 control stream (type 0x00) as {hex id: value}, if
    complete."""
    head = parse_varint(data, 0)
    if head is None or head[0] != 0x00:
        return None
    pos = head[1]
    while True:
        ftype = parse_varint(data, pos)
        if ftype is None:
            return None
        flen = parse_varint(data, ftype[1])
        if flen is None or flen[1] + flen[0] > len(data):
            return None
        body_start, body_end = flen[1], flen[1] + flen[0]
        if ftype[0] == 0x04:
            settings: dict[str, int] = {}
            p = body_start
            while p < body_end:
                key = parse_varint(data, p)
                if key is None:
                    return None
                val = parse_varint(data, key[1])
                if val is None:
                    return None
                settings[hex(key[0])] = val[0]
                p = val[1]
            return settings
        pos = body_end
