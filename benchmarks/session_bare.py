"""Bulk transfer over the trio endpoint, py to py on loopback, without libp2p. Not a test.

Two processes: a server (``--serve``, started by this script) and the client (this process).
One stream carries ``--size`` MiB up (client to server) or down; each side measures its own CPU
time over the transfer (``time.process_time``), so the figures include the pump, the engine and,
with ``--layer session``, our WebTransport-over-HTTP/3 session layer. ``--layer quic`` is the
bare engine on the same endpoint: the difference is the session layer's cost.

Usage (from the repository root, after ``python setup.py build_ext --inplace``):
    python benchmarks/session_bare.py [--engine NAME ...] [--layer quic|session ...]
        [--udp c|py] [--size MiB] [--json PATH]
Prints one line per run (MB/s, CPU s/GB client and server) and writes the runs as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import trio

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.endpoint import (  # noqa: E402
    Endpoint,
    EndpointConnection,
    EndpointOptions,
)
from py_libp2p_webtransport.engine import available_engines  # noqa: E402
from py_libp2p_webtransport.engine import base as eng  # noqa: E402
from py_libp2p_webtransport.session import (  # noqa: E402
    SessionEstablished,
    SessionRequested,
    StreamDataReceived,
    WebTransportH3,
)

CHUNK = bytes(64 * 1024)
SEND_AHEAD = 1024 * 1024  # bytes queued in the engine before the writer waits for acks
HEADER_LEN = 9  # b"U" or b"D", then the size as 8 bytes


def _certificate() -> tuple[bytes, bytes]:
    """A throwaway certificate in the libp2p shape and its PKCS#8 key, both DER."""
    cert = ephemeral_certificate()
    return cert.der, cert.key_der


class Peer:
    """One side's handler: speaks the tiny transfer protocol over a QUIC or a WT stream.

    A transfer stream starts with ``U<size>`` (the opener sends ``size`` bytes, the other side
    answers its CPU seconds when all arrived) or ``D<size>`` (the other side sends ``size``
    bytes, then its CPU seconds and FIN).
    """

    def __init__(self, conn: EndpointConnection, layer: str, is_client: bool) -> None:
        self.conn = conn
        self.engine = conn.engine
        self.is_client = is_client
        self.h3: WebTransportH3 | None = None
        if layer == "session":
            self.h3 = WebTransportH3(self.engine, is_client=is_client)
            self.h3.initialize(trio.current_time())
        self.handshake = trio.Event()
        self.ready = trio.Event()  # client: handshake (and session) established
        self.session_id = -1
        self.streams: dict[int, dict[str, Any]] = {}  # per-stream transfer state
        self.done = trio.Event()
        self.reply = bytearray()

    # -- ConnectionHandler ---------------------------------------------------------------------

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[eng.EngineEvent], now: float
    ) -> None:
        if any(isinstance(ev, eng.HandshakeCompleted) for ev in events):
            self.handshake.set()
        if self.h3 is None:
            for ev in events:
                if isinstance(ev, eng.HandshakeCompleted) and self.is_client:
                    self.ready.set()
                elif isinstance(ev, eng.StreamDataReceived):
                    self._data(ev.stream_id, ev.data, ev.end_stream)
        else:
            for ev in events:
                self.h3.handle_engine_event(ev, now)
            while (sev := self.h3.next_event()) is not None:
                if isinstance(sev, SessionRequested):
                    self.h3.accept_session(sev.session_id)
                elif isinstance(sev, SessionEstablished):
                    self.session_id = sev.session_id
                    self.ready.set()
                elif isinstance(sev, StreamDataReceived):
                    self._data(sev.stream_id, sev.data, sev.end_stream)
        self._write_more()

    def get_timer(self) -> float | None:
        return self.h3.get_timer() if self.h3 is not None else None

    def handle_timer(self, now: float) -> None:
        if self.h3 is not None:
            self.h3.handle_timer(now)

    # -- the transfer protocol -----------------------------------------------------------------

    def _send(self, stream_id: int, data: bytes, end: bool = False) -> None:
        if self.h3 is not None:
            self.h3.send_stream_data(stream_id, data, end)
        else:
            self.engine.send_stream_data(stream_id, data, end)

    def _consume(self, stream_id: int, n: int) -> None:
        if self.h3 is not None:
            self.h3.consume(stream_id, n)
        else:
            self.engine.consume(stream_id, n)

    def start(self, direction: str, size: int) -> int:
        """Client: open the transfer stream."""
        if self.h3 is not None:
            sid = self.h3.open_stream(self.session_id)
        else:
            sid = self.engine.get_next_available_stream_id()
        header = (b"U" if direction == "up" else b"D") + size.to_bytes(8, "big")
        self._send(sid, header)
        state: dict[str, Any] = {"head": b"", "got": 0, "size": size}
        if direction == "up":
            state["to_send"] = size
        self.streams[sid] = state
        self._write_more()
        self.conn.transmit_soon()
        return sid

    def _data(self, sid: int, data: bytes, end: bool) -> None:
        if data:
            self._consume(sid, len(data))
        state = self.streams.setdefault(sid, {"head": b"", "got": 0, "size": -1})
        if self.is_client:
            if state.get("to_send") is not None:
                self.reply += data  # upload: the server's CPU figure
            else:  # download: payload, then the server's CPU figure
                room = max(0, state["size"] - state["got"])
                state["got"] += min(room, len(data))
                self.reply += data[room:]
            if end:
                self.done.set()
            return
        # Server: parse the header, then count payload.
        if state["size"] < 0:
            state["head"] += data
            if len(state["head"]) < HEADER_LEN:
                return
            head, data = state["head"][:HEADER_LEN], state["head"][HEADER_LEN:]
            state["size"] = int.from_bytes(head[1:], "big")
            state["cpu0"] = time.process_time()
            if head[:1] == b"D":
                state["to_send"] = state["size"]
                state["fin_after"] = True
                return
        state["got"] += len(data)
        if state["got"] >= state["size"] and not state.get("answered"):
            state["answered"] = True
            cpu = time.process_time() - state["cpu0"]
            self._send(sid, repr(cpu).encode(), True)

    def _write_more(self) -> None:
        for sid, state in self.streams.items():
            left = state.get("to_send") or 0
            while left > 0 and self.engine.send_buffer_size(sid) < SEND_AHEAD:
                n = min(left, len(CHUNK))
                left -= n
                self._send(sid, CHUNK[:n] if n < len(CHUNK) else CHUNK)
                if left == 0 and state.get("fin_after"):
                    self._send(sid, repr(time.process_time() - state["cpu0"]).encode(), True)
            if "to_send" in state:
                state["to_send"] = left


async def serve(args: argparse.Namespace) -> None:
    cert, key = _certificate()
    config = eng.EngineConfig(is_client=False, certificate_der=cert, private_key_der=key)
    udp = importlib.import_module(f"py_libp2p_webtransport._udp_{args.udp}")

    def on_connection(conn: EndpointConnection) -> None:
        conn.handler = Peer(conn, args.layer, is_client=False)

    endpoint = await Endpoint.bind(
        "127.0.0.1",
        0,
        EndpointOptions(engine=args.engine, server_config=config, udp=udp),
        on_connection=on_connection,
    )
    print("PORT", endpoint.local_address[1], flush=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(endpoint.run)
        await trio.to_thread.run_sync(sys.stdin.read)  # the client closes our stdin when done
        endpoint.close()


async def client(args: argparse.Namespace, layer: str, engine: str, port: int) -> dict[str, Any]:
    udp = importlib.import_module(f"py_libp2p_webtransport._udp_{args.udp}")
    endpoint = await Endpoint.bind("127.0.0.1", 0, EndpointOptions(engine=engine, udp=udp))
    size = args.size * 1024 * 1024
    result: dict[str, Any] = {
        "engine": engine,
        "layer": layer,
        "udp": args.udp,
        "direction": args.direction,
        "bytes": size,
    }
    async with trio.open_nursery() as nursery:
        nursery.start_soon(endpoint.run)
        conn = endpoint.connect(("127.0.0.1", port), eng.EngineConfig(is_client=True))
        peer = Peer(conn, layer, is_client=True)
        conn.handler = peer
        with trio.fail_after(30):
            if layer == "session":
                await _await_h3_ready(peer, conn)
            else:
                await peer.ready.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        peer.start(args.direction, size)
        with trio.fail_after(600):
            await peer.done.wait()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        gb = size / 1e9
        result.update(
            seconds=wall,
            mb_per_s=size / 1e6 / wall,
            client_cpu_s_per_gb=cpu / gb,
            pump_turns=endpoint.stats.pump_turns,
            datagrams_sent=endpoint.stats.datagrams_sent,
            datagrams_received=endpoint.stats.datagrams_received,
        )
        if peer.reply:
            result["server_cpu_s_per_gb"] = float(peer.reply.decode()) / gb
        endpoint.close()
    return result


async def _await_h3_ready(peer: Peer, conn: EndpointConnection) -> None:
    # The session opens once the QUIC handshake and SETTINGS are through: send the CONNECT.
    assert peer.h3 is not None
    await peer.handshake.wait()
    peer.h3.connect("127.0.0.1", "/.well-known/libp2p-webtransport?type=noise", trio.current_time())
    conn.transmit_soon()
    await peer.ready.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", nargs="*", default=available_engines())
    parser.add_argument("--layer", nargs="*", default=["quic", "session"])
    parser.add_argument("--udp", choices=["c", "py"], default="c")
    parser.add_argument("--direction", choices=["up", "down"], default="up")
    parser.add_argument("--size", type=int, default=32, help="MiB per run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.serve:
        args.engine, args.layer = args.engine[0], args.layer[0]
        trio.run(serve, args)
        return
    runs = []
    for engine in args.engine:
        for layer in args.layer:
            server = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    "--engine",
                    engine,
                    "--layer",
                    layer,
                    "--udp",
                    args.udp,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert server.stdout is not None
                port = int(server.stdout.readline().split()[1])
                run = trio.run(client, args, layer, engine, port)
            finally:
                assert server.stdin is not None
                server.stdin.close()
                server.wait(timeout=30)
            runs.append(run)
            extra = (
                f", server {run['server_cpu_s_per_gb']:.1f}" if "server_cpu_s_per_gb" in run else ""
            )
            print(
                f"{engine:8} {layer:8} {args.direction:4} udp-{args.udp}: "
                f"{run['mb_per_s']:7.1f} MB/s, CPU s/GB client {run['client_cpu_s_per_gb']:.1f}"
                f"{extra}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"python": platform.python_version(), "machine": platform.machine(), "runs": runs},
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
