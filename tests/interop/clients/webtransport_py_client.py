"""Interop client on webtransport-py (Shiguredo; ngtcp2 + nghttp3), run from its own venv.

webtransport-py's asyncio client polls with fixed sleeps and hides FIN and rejections, so this
program drives the library's sans-IO objects (`quic.Connection`, `h3.Session`) itself with one UDP
socket and bounded waits. Because it sees every byte the library sends and receives, it also
reports the SETTINGS it sent and the server's SETTINGS, and the CONNECT status.

Usage: python webtransport_py_client.py --url https://127.0.0.1:PORT/path?query
       [--echo-bidi N]... [--accept-bidi [K]] [--expect-status S] [--timeout T]
Prints one JSON line (see _common.Result); exit status 0 when ok.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from urllib.parse import urlsplit

from _common import (
    CLOSE_GRACE,
    Result,
    build_parser,
    check_args,
    compare_echo,
    parse_settings_from_control_stream,
    parse_varint,
    start_watchdog,
)
from webtransport import h3, quic

RECV_SIZE = 65535
# webtransport-py 2026.1.0.dev0 quirks (both spin forever in native code holding the GIL):
# - `h3.Session.send_stream_data(..., fin=False)` never returns, so every write is one call with
#   fin=True;
# - `quic.Connection.send()` never returns when more stream data is queued than the congestion
#   window allows (~10 packets at the start), so one write must stay below that, and we only write
#   once everything sent before has been acknowledged (see Driver.wait_quiet).
MAX_WRITE = 12000
# With nothing in flight ngtcp2 arms no loss-detection timer: the next timer is then the idle
# timeout (30 s here), far beyond this.
QUIET_TIMER_NS = 2_000_000_000


class Driver:
    """Own event loop around webtransport-py's sans-IO QUIC connection and WebTransport session."""

    def __init__(self, host: str, port: int, verbose: bool) -> None:
        self.addr = (host, port)
        self.verbose = verbose
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(self.addr)
        qc = quic.Config()
        qc.alpn_protocols = ["h3"]
        qc.server_name = host
        # The server's certificate is self-signed and the library cannot pin a hash: skip
        # verification (libp2p's Noise handshake binds the certificate hash later).
        qc.verify_peer = False
        qc.idle_timeout_ns = 30_000_000_000
        self.quic = quic.Connection.create_client(qc)
        wc = h3.Config()
        wc.is_server = False
        self.wt = h3.Session.create_client(wc)
        self.handshake_done = False
        self.closed: tuple[int, str] | None = None
        self.session_ready = False
        self.session_closed: tuple[int, str] | None = None
        self.h3_errors: list[str] = []
        # Raw bytes of the server's unidirectional streams (to find its control stream and
        # SETTINGS) and of our own control stream (to report the SETTINGS the library sends).
        self.peer_uni: dict[int, bytearray] = {}
        self.own_uni: dict[int, bytearray] = {}
        self.control_stream_id: int | None = None
        self.request_stream_id: int | None = None
        self.request_response = bytearray()
        self.request_fin = False
        self.stream_data: dict[int, bytearray] = {}
        self.stream_fin: set[int] = set()
        self.peer_opened: list[int] = []

    def log(self, *parts: object) -> None:
        if self.verbose:
            print("[webtransport-py]", *parts, file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Move what the session wants to send into QUIC, then QUIC's packets onto the socket."""
        for stream_id, data, fin in self.wt.get_streams_to_send():
            if stream_id in self.own_uni:
                self.own_uni[stream_id].extend(data)
            self.quic.send_stream_data(stream_id, data, fin)
        for datagram in self.wt.get_datagrams_to_send():
            self.quic.send_datagram(datagram)
        while True:
            packet = self.quic.send()
            if not packet:
                break
            try:
                self.sock.send(packet)
            except BlockingIOError:
                break
            except OSError as exc:  # e.g. ECONNREFUSED reported for an earlier send
                self.log("send error", exc)
                break

    def _on_quic_event(self, ev: quic.Event) -> None:
        t = ev.type
        if t == quic.EventType.HANDSHAKE_COMPLETED:
            self.handshake_done = True
        elif t == quic.EventType.CONNECTION_CLOSED:
            self.closed = (ev.error_code, ev.reason)
            self.log("connection closed", ev.error_code, ev.reason)
        elif t == quic.EventType.STREAM_DATA:
            sid = ev.stream_id
            if sid % 4 == 3:  # server-initiated unidirectional: control and QPACK streams
                self.peer_uni.setdefault(sid, bytearray()).extend(ev.data)
            if sid == self.request_stream_id:
                self.request_response.extend(ev.data)
                self.request_fin = self.request_fin or ev.fin
            self.wt.receive_stream_data(sid, ev.data, ev.fin)
            # webtransport-py's WebTransport events carry no FIN flag (and STREAM_CLOSED is not
            # emitted for a FIN), so the end of a stream is taken from the QUIC event; the data
            # before it was handed to the session above and is drained in the same pass.
            if ev.fin:
                self.stream_fin.add(sid)
        elif t == quic.EventType.DATAGRAM:
            self.wt.receive_datagram(ev.data)
        elif t == quic.EventType.STREAM_RESET:
            self.log("stream reset", ev.stream_id, ev.error_code)
            self.h3_errors.append(f"stream {ev.stream_id} reset by peer with code {ev.error_code}")

    def _on_wt_event(self, ev: h3.Event) -> None:
        t = ev.type
        self.log("wt event", t.name, ev.session_id, ev.stream_id, len(ev.data))
        if t == h3.EventType.SESSION_READY:
            self.session_ready = True
        elif t == h3.EventType.SESSION_CLOSED:
            self.session_closed = (ev.error_code, ev.error_message)
        elif t in (h3.EventType.STREAM_OPENED, h3.EventType.STREAM_DATA):
            # The library emits no STREAM_OPENED for a server-opened bidi stream: its data does.
            if ev.stream_id % 4 == 1 and ev.stream_id not in self.peer_opened:
                self.peer_opened.append(ev.stream_id)
            self.stream_data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
        elif t == h3.EventType.ERROR:
            self.h3_errors.append(f"{ev.error_code}: {ev.error_message}")

    def drain(self) -> None:
        while (ev := self.quic.next_event()) is not None:
            self._on_quic_event(ev)
        while (wev := self.wt.next_event()) is not None:
            self._on_wt_event(wev)

    def pump_until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Exchange packets until `done()` holds, the connection closes or `deadline` passes."""
        while True:
            self.drain()
            self.flush()
            if done():
                return True
            if self.closed is not None:
                return False
            now = time.monotonic()
            if now >= deadline:
                return False
            wait = deadline - now
            qt = self.quic.get_timeout()  # nanoseconds until the next QUIC timer, relative
            if qt is not None:
                if qt <= 0:
                    self.quic.handle_timeout()
                    continue
                # At least 1 ms so that a timer the library does not clear cannot spin the loop.
                wait = min(wait, max(qt / 1e9, 0.001))
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                continue
            # Read everything already queued before processing (one batch per wake-up).
            while True:
                try:
                    data = self.sock.recv(RECV_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:  # ICMP port unreachable surfaces as ECONNREFUSED
                    self.closed = (-1, f"socket error: {exc}")
                    return False
                self.quic.receive(data)

    def wait_quiet(self, deadline: float) -> bool:
        """Pump until none of our packets awaits an acknowledgement (the whole congestion window
        is free again), so that the next write cannot make `quic.send()` spin."""

        def quiet() -> bool:
            qt = self.quic.get_timeout()
            return qt is None or qt > QUIET_TIMER_NS

        return self.pump_until(quiet, deadline)

    def open_h3_streams(self) -> None:
        """Open the three client HTTP/3 unidirectional streams, remembering the control stream."""
        self.control_stream_id = self.quic.open_stream(False)
        self.own_uni[self.control_stream_id] = bytearray()
        self.wt.bind_control_stream(self.control_stream_id)
        self.wt.bind_qpack_encoder_stream(self.quic.open_stream(False))
        self.wt.bind_qpack_decoder_stream(self.quic.open_stream(False))

    def server_settings(self) -> dict[str, int] | None:
        for data in self.peer_uni.values():
            settings = parse_settings_from_control_stream(bytes(data))
            if settings is not None:
                return settings
        return None

    def client_settings(self) -> dict[str, int] | None:
        if self.control_stream_id is None:
            return None
        return parse_settings_from_control_stream(bytes(self.own_uni[self.control_stream_id]))

    def close(self) -> None:
        try:
            if self.request_stream_id is not None and self.session_ready:
                self.wt.close_session(self.request_stream_id)
            self.flush()
            self.quic.close()
            self.flush()
        finally:
            self.sock.close()


def _prefix_int(block: bytes, pos: int, bits: int) -> tuple[int, int] | None:
    """Decode an HPACK/QPACK prefix integer of `bits` bits at `pos` (RFC 7541 5.1)."""
    if pos >= len(block):
        return None
    limit = (1 << bits) - 1
    value = block[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while pos < len(block):
        b = block[pos]
        pos += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos
    return None


# QPACK static table entries for `:status` (RFC 9204 Appendix A).
_STATIC_STATUS = dict(
    zip(
        (24, 25, 26, 27, 28, 63, 64, 65, 66, 67, 68, 69, 70, 71),
        (103, 200, 304, 404, 503, 100, 204, 206, 302, 400, 403, 421, 425, 500),
        strict=True,
    )
)


def status_from_headers_frame(data: bytes) -> int | None:
    """Find `:status` as the first field line of the first HEADERS frame on the CONNECT stream.

    The library reports neither the status nor a rejection, so this reads the raw response.
    Servers encode `:status` from QPACK's static table, either fully indexed or as a literal with a
    static name reference and a plain (not Huffman) value; other encodings give None.
    """
    ftype = parse_varint(data, 0)
    if ftype is None or ftype[0] != 0x01:
        return None
    flen = parse_varint(data, ftype[1])
    if flen is None:
        return None
    block = data[flen[1] : flen[1] + flen[0]]
    # Field section prefix: required insert count (8-bit prefix) and delta base (7-bit prefix).
    ric = _prefix_int(block, 0, 8)
    if ric is None or ric[0] != 0:
        return None  # uses the dynamic table: not something our servers do
    base = _prefix_int(block, ric[1], 7)
    if base is None or base[1] >= len(block):
        return None
    pos = base[1]
    b = block[pos]
    if b & 0xC0 == 0xC0:  # indexed field line, static table
        idx = _prefix_int(block, pos, 6)
        return _STATIC_STATUS.get(idx[0]) if idx else None
    if b & 0xD0 == 0x50:  # literal field line with static name reference
        idx = _prefix_int(block, pos, 4)
        if idx is None or idx[1] >= len(block) or (idx[0] not in _STATIC_STATUS):
            return None
        if block[idx[1]] & 0x80:  # Huffman-coded value
            return None
        vlen = _prefix_int(block, idx[1], 7)
        if vlen is None:
            return None
        value = block[vlen[1] : vlen[1] + vlen[0]]
        return int(value) if value.isdigit() else None
    return None


def run(args, result: Result) -> bool:  # type: ignore[no-untyped-def]
    parts = urlsplit(args.url)
    host, port = parts.hostname or "", parts.port or 443
    deadline = time.monotonic() + args.timeout
    drv = Driver(host, port, args.verbose)
    actions_ok = True
    try:
        result.phase = "handshake"
        drv.flush()
        if not drv.pump_until(lambda: drv.handshake_done, deadline):
            result.fail(f"QUIC handshake did not complete ({drv.closed or 'timeout'})")
            return False
        drv.open_h3_streams()
        result.phase = "settings"
        # webtransport-py sends CONNECT only once the server's SETTINGS are in (connect() checks).
        if not drv.pump_until(lambda: drv.server_settings() is not None, deadline):
            result.fail(f"no server SETTINGS ({drv.closed or 'timeout'})")
            return False
        result.observed["server_settings"] = drv.server_settings()
        result.observed["client_settings"] = drv.client_settings()
        result.phase = "connect"
        drv.request_stream_id = drv.quic.open_stream(True)
        if not drv.wt.connect(drv.request_stream_id, args.url):
            result.fail(
                "webtransport-py refused to send CONNECT (server SETTINGS lack what it requires)"
            )
            return False
        # Fixed in the library's CONNECT (seen on the wire); the tests also check it server-side.
        result.protocol = "webtransport"
        drv.flush()

        def answered() -> bool:
            return drv.session_ready or drv.session_closed is not None or bool(drv.request_response)

        if not drv.pump_until(answered, deadline):
            result.fail(f"no answer to CONNECT ({drv.closed or 'timeout'})")
            return False
        # Let the whole HEADERS frame arrive before decoding it.
        drv.pump_until(
            lambda: drv.session_ready or drv.request_fin, min(deadline, time.monotonic() + 0.2)
        )
        result.status = status_from_headers_frame(bytes(drv.request_response))
        if not drv.session_ready:
            why = drv.session_closed or drv.h3_errors
            result.fail(f"session not established (status {result.status}, {why})")
            return False
        result.connected = True

        for n in args.echo_bidi:
            result.phase = f"echo-bidi {n}"
            if n > MAX_WRITE:
                result.fail(
                    f"{n} bytes exceed the {MAX_WRITE}-byte write this library version can send"
                )
                return False
            payload = os.urandom(n)
            if not drv.wait_quiet(deadline):
                result.fail(f"earlier data never acknowledged ({drv.closed or 'timeout'})")
                return False
            sid = drv.quic.open_stream(True)
            if not drv.wt.open_stream(drv.request_stream_id, sid, False):
                result.fail("open_stream refused")
                return False
            drv.wt.send_stream_data(sid, payload, True)
            result.bytes_sent += n
            got = drv.pump_until(lambda sid=sid: sid in drv.stream_fin, deadline)
            received = bytes(drv.stream_data.get(sid, b""))
            result.bytes_received += len(received)
            echo = compare_echo(payload, received)
            echo["fin"] = got
            result.echoes.append(echo)
            if not (got and echo["match"]):
                actions_ok = False
                result.fail(f"echo mismatch or no FIN: {echo}")

        for i in range(args.accept_bidi):
            result.phase = f"accept-bidi {i + 1}/{args.accept_bidi}"
            if not drv.pump_until(lambda i=i: len(drv.peer_opened) > i, deadline):
                actions_ok = False
                result.fail(f"no server-opened bidi stream ({drv.closed or 'timeout'})")
                break
            sid = drv.peer_opened[i]
            if not drv.pump_until(lambda sid=sid: sid in drv.stream_fin, deadline):
                actions_ok = False
                result.fail(
                    f"server-opened stream {sid} did not finish ({drv.closed or 'timeout'})"
                )
                break
            data = bytes(drv.stream_data.get(sid, b""))
            result.bytes_received += len(data)
            if len(data) > MAX_WRITE:
                actions_ok = False
                result.fail(
                    f"cannot echo {len(data)} bytes: above the {MAX_WRITE}-byte write limit"
                )
                break
            if not drv.wait_quiet(deadline):
                actions_ok = False
                result.fail(f"earlier data never acknowledged ({drv.closed or 'timeout'})")
                break
            drv.wt.send_stream_data(sid, data, True)
            result.bytes_sent += len(data)
            drv.flush()
            result.accepted.append({"stream_id": sid, "received": len(data), "echoed": len(data)})
        if drv.h3_errors:
            result.observed["h3_errors"] = drv.h3_errors
        result.phase = "done"
        # Keep the connection up a moment so that the last echo leaves before CONNECTION_CLOSE
        # (which discards unsent stream data); stop early if the server closes first.
        drv.pump_until(lambda: False, min(deadline, time.monotonic() + args.linger))
        return actions_ok
    finally:
        try:
            drv.close()
        except Exception as exc:  # closing must never mask the outcome
            drv.log("close error", exc)


def main() -> None:
    parser = build_parser(__doc__ or "")
    args = parser.parse_args()
    check_args(parser, args)
    result = Result(
        client="webtransport-py",
        version=version("webtransport-py"),
        url=args.url,
        expect_status=args.expect_status,
    )
    start_watchdog(result, args.timeout + CLOSE_GRACE)
    actions_ok = False
    try:
        actions_ok = run(args, result)
    except Exception as exc:
        result.fail(f"{type(exc).__name__}: {exc}")
    result.finish(actions_ok)
    result.emit()


if __name__ == "__main__":
    main()
