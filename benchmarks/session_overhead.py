"""What the session layer costs on top of the QUIC engine.

1. Hot path: CPU per ``StreamDataReceived`` of an established WebTransport stream through
   ``WebTransportH3.handle_engine_event`` + ``next_event`` (a recording stub engine, no QUIC).
2. Transfer: one stream of N MiB client → server over two in-memory engines, once through
   ``WebTransportH3`` on both sides and once with the bare engines; CPU seconds and the ratio.

Run: ``python benchmarks/session_overhead.py [--mib 32] [--engine aioquic]``; prints a table and
writes JSON with ``--json PATH``. Numbers are for comparison within one run only.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import pylsqpack

from py_libp2p_webtransport import _wire
from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.engine import (
    EngineConfig,
    StreamDataReceived,
    available_engines,
    create_engine,
)
from py_libp2p_webtransport.session import SessionRequested, WebTransportH3

# ---- 1. hot path ---------------------------------------------------------------------------------


class _StubEngine:
    """Just enough of QuicEngine for the session layer to run without QUIC."""

    name = "stub"

    def __init__(self) -> None:
        self._next = {True: 3, False: 1}

    def get_next_available_stream_id(self, is_unidirectional: bool = False) -> int:
        sid = self._next[is_unidirectional]
        self._next[is_unidirectional] += 4
        return sid

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def hot_path(events: int, chunk: int) -> float:
    """Microseconds per WT-stream data event through the server's session layer."""
    h3 = WebTransportH3(_StubEngine(), is_client=False)  # type: ignore[arg-type]
    h3.initialize(0.0)
    settings = _wire.encode_frame(0x4, _wire.encode_settings({0x2B603742: 1, 0x33: 1}))
    h3.handle_engine_event(StreamDataReceived(2, b"\x00" + settings, False), 0.0)
    _, block = pylsqpack.Encoder().encode(
        0,
        [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", b"a"),
            (b":path", b"/.well-known/libp2p-webtransport?type=noise"),
            (b":protocol", b"webtransport"),
        ],
    )
    h3.handle_engine_event(StreamDataReceived(0, _wire.encode_frame(0x1, block), False), 0.0)
    assert isinstance(h3.next_event(), SessionRequested)
    h3.accept_session(0)
    h3.handle_engine_event(StreamDataReceived(4, _wire.encode_stream_header(True, 0), False), 0.0)
    while h3.next_event() is not None:
        pass
    event = StreamDataReceived(4, b"x" * chunk, False)
    handle, pull = h3.handle_engine_event, h3.next_event
    start = time.process_time()
    for _ in range(events):
        handle(event, 0.0)
        pull()
    return (time.process_time() - start) / events * 1e6


# ---- 2. transfer over real engines ---------------------------------------------------------------


def _certificate() -> tuple[bytes, bytes]:
    """A throwaway certificate in the libp2p shape and its PKCS#8 key, both DER."""
    cert = ephemeral_certificate()
    return cert.der, cert.key_der


def transfer(engine_name: str, mib: int, with_h3: bool) -> tuple[float, int]:
    """(CPU seconds, bytes received) for one client→server stream of ``mib`` MiB."""
    cert, key = _certificate()
    now = 1000.0
    client = create_engine(engine_name, EngineConfig(is_client=True))
    client.connect(("127.0.0.1", 2), now)
    server = None
    c_h3 = WebTransportH3(client, is_client=True) if with_h3 else None
    s_h3: WebTransportH3 | None = None
    if c_h3 is not None:
        c_h3.initialize(now)
    total = mib * 1024 * 1024
    received = 0
    stream_id: int | None = None
    session_id: int | None = None
    sent = 0
    piece = b"\x5a" * 65536
    start = time.process_time()
    for _ in range(2_000_000):
        for data, _addr in client.datagrams_to_send(now):
            if server is None:
                server = create_engine(
                    engine_name,
                    EngineConfig(is_client=False, certificate_der=cert, private_key_der=key),
                    original_destination_connection_id=data[6 : 6 + data[5]],
                )
                if with_h3:
                    s_h3 = WebTransportH3(server, is_client=False)
                    s_h3.initialize(now)
            server.receive_datagram(data, ("127.0.0.1", 1), now)
        if server is not None:
            for data, _addr in server.datagrams_to_send(now):
                client.receive_datagram(data, ("127.0.0.1", 2), now)
            while (ev := server.next_event()) is not None:
                if s_h3 is None:
                    if isinstance(ev, StreamDataReceived):
                        received += len(ev.data)
                        server.consume(ev.stream_id, len(ev.data))
                    continue
                s_h3.handle_engine_event(ev, now)
            while s_h3 is not None and (sev := s_h3.next_event()) is not None:
                if isinstance(sev, SessionRequested):
                    s_h3.accept_session(sev.session_id)
                elif type(sev).__name__ == "StreamDataReceived":
                    received += len(sev.data)  # type: ignore[union-attr]
                    s_h3.consume(sev.stream_id, len(sev.data))  # type: ignore[union-attr]
        while (ev := client.next_event()) is not None:
            if c_h3 is not None:
                c_h3.handle_engine_event(ev, now)
        while c_h3 is not None and (cev := c_h3.next_event()) is not None:
            if type(cev).__name__ == "SessionEstablished":
                session_id = cev.session_id  # type: ignore[union-attr]
        if c_h3 is not None and session_id is None and c_h3.peer_settings is not None:
            if not c_h3._requests:  # noqa: SLF001  (benchmark: connect once)
                c_h3.connect("a", "/.well-known/libp2p-webtransport?type=noise", now)
        ready = session_id is not None if with_h3 else server is not None
        if ready and stream_id is None:
            if c_h3 is not None and session_id is not None:
                stream_id = c_h3.open_stream(session_id)
            else:
                stream_id = client.get_next_available_stream_id()
        if stream_id is not None and sent < total and client.send_buffer_size(stream_id) < 1 << 20:
            if c_h3 is not None:
                c_h3.send_stream_data(stream_id, piece)
            else:
                client.send_stream_data(stream_id, piece)
            sent += len(piece)
        if received >= total:
            break
        timer = min(
            (t for t in (client.get_timer(), server and server.get_timer()) if t), default=None
        )
        now = max(now + 0.0005, now if timer is None else min(timer, now + 0.0005))
        for engine in (client, server):
            if engine is not None and (t := engine.get_timer()) is not None and t <= now:
                engine.handle_timer(now)
    return time.process_time() - start, received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--engine", action="append", help="engine(s); default: all available")
    parser.add_argument("--json", help="write results here")
    args = parser.parse_args()
    results: dict[str, Any] = {"implementation": _wire.IMPLEMENTATION}
    us = hot_path(args.events, 1200)
    results["hot_path_us_per_event"] = us
    print(f"hot path ({_wire.IMPLEMENTATION} _wire): {us:.3f} µs per WT data event")
    for name in args.engine or available_engines():
        bare_cpu, bare_n = transfer(name, args.mib, with_h3=False)
        h3_cpu, h3_n = transfer(name, args.mib, with_h3=True)
        assert bare_n >= args.mib << 20 and h3_n >= args.mib << 20, (bare_n, h3_n)
        results[name] = {"bare_cpu_s": bare_cpu, "h3_cpu_s": h3_cpu, "ratio": h3_cpu / bare_cpu}
        print(
            f"{name}: {args.mib} MiB bare {bare_cpu:.2f} s CPU, with session layer "
            f"{h3_cpu:.2f} s CPU (x{h3_cpu / bare_cpu:.3f})"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
