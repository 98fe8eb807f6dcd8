"""Bare QUIC engine ceiling over loopback UDP: one stream, no HTTP/3, no libp2p.

Client and server run in separate processes (so each side's CPU time is its own), each with the
batched pump the endpoint uses: wait for the socket or the timer, read until EAGAIN, feed the
whole batch, run the timer if due, drain events, transmit once.

    python benchmarks/engine_bare.py                      # every installed engine, 200 MiB
    python benchmarks/engine_bare.py --engine qh3 --mib 500 --json out.json
    python benchmarks/engine_bare.py --engine aioquic --no-pacing

Prints MB/s (10^6 bytes per second of wall time, first byte written to FIN received) and CPU
seconds per GB (10^9 bytes) for each side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import socket
import sys
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.engine import (  # noqa: E402
    ConnectionTerminated,
    EngineConfig,
    HandshakeCompleted,
    QuicEngine,
    StreamDataReceived,
    available_engines,
    create_engine,
)

CHUNK = 1024 * 1024
SOCKET_BUFFER = 4 * 1024 * 1024


def certificate() -> tuple[bytes, bytes]:
    """A throwaway certificate in the libp2p shape and its PKCS#8 key, both DER."""
    cert = ephemeral_certificate()
    return cert.der, cert.key_der


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def transmit(sock: socket.socket, engine: QuicEngine, now: float) -> None:
    for data, addr in engine.datagrams_to_send(now):
        while True:
            try:
                sock.sendto(data, addr[:2])
                break
            except BlockingIOError:
                select.select([], [sock], [], 0.01)


def receive_batch(sock: socket.socket) -> tuple[list[bytes], Any]:
    batch, addr = [], None
    while True:
        try:
            data, addr = sock.recvfrom(65536)
        except BlockingIOError:
            return batch, addr
        batch.append(data)


def wait(sock: socket.socket, engine: QuicEngine | None) -> None:
    timer = engine.get_timer() if engine is not None else None
    timeout = 1.0 if timer is None else max(0.0, min(1.0, timer - time.monotonic()))
    select.select([sock], [], [], timeout)


def run_timer(engine: QuicEngine, now: float) -> None:
    timer = engine.get_timer()
    if timer is not None and timer <= now:
        engine.handle_timer(now)


def server(name: str, config: EngineConfig, total: int, pipe: Connection) -> None:
    sock = udp_socket()
    pipe.send(sock.getsockname())
    engine: QuicEngine | None = None
    received, started, cpu0 = 0, 0.0, 0.0
    while True:
        wait(sock, engine)
        now = time.monotonic()
        batch, addr = receive_batch(sock)
        if batch and engine is None:
            dcid = batch[0][6 : 6 + batch[0][5]]
            engine = create_engine(name, config, original_destination_connection_id=dcid)
        if engine is None:
            continue
        if batch:
            engine.receive_datagrams(batch, addr, now)
        run_timer(engine, now)
        while (event := engine.next_event()) is not None:
            if isinstance(event, StreamDataReceived):
                if not received:
                    started, cpu0 = time.monotonic(), time.process_time()
                received += len(event.data)
                engine.consume(event.stream_id, len(event.data))
                if event.end_stream:
                    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu0
                    engine.send_stream_data(event.stream_id, b"done", end_stream=True)
                    transmit(sock, engine, time.monotonic())
                    pipe.send({"received": received, "elapsed": elapsed, "cpu": cpu})
            elif isinstance(event, ConnectionTerminated):
                return
        transmit(sock, engine, now)


def client(name: str, config: EngineConfig, total: int, addr: Any, pipe: Connection) -> None:
    sock = udp_socket()
    engine = create_engine(name, config)
    engine.connect(addr, time.monotonic())
    transmit(sock, engine, time.monotonic())
    payload = os.urandom(CHUNK)
    sid, written, cpu0, connected, done = -1, 0, 0.0, False, False
    while not done:
        wait(sock, engine)
        now = time.monotonic()
        batch, _ = receive_batch(sock)
        if batch:
            engine.receive_datagrams(batch, addr, now)
        run_timer(engine, now)
        while (event := engine.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                connected, cpu0 = True, time.process_time()
                sid = engine.get_next_available_stream_id()
            elif isinstance(event, StreamDataReceived):
                engine.consume(event.stream_id, len(event.data))
                done = done or event.end_stream
            elif isinstance(event, ConnectionTerminated):
                raise RuntimeError(f"connection terminated: {event}")
        # Keep a few chunks queued: enough to fill the window, not the whole transfer.
        while connected and written < total and engine.send_buffer_size(sid) < 4 * CHUNK:
            n = min(CHUNK, total - written)
            written += n
            engine.send_stream_data(sid, payload[:n], end_stream=written == total)
        transmit(sock, engine, now)
    cpu = time.process_time() - cpu0
    stats = engine.stats()
    engine.close()
    transmit(sock, engine, time.monotonic())
    pipe.send({"cpu": cpu, "stats": stats.__dict__ if hasattr(stats, "__dict__") else repr(stats)})


def bench(name: str, total: int, pacing: bool, recv_budget: int | None) -> dict[str, Any]:
    cert, key = certificate()
    server_config = EngineConfig(is_client=False, certificate_der=cert, private_key_der=key)
    client_config = EngineConfig(is_client=True, pacing=pacing)
    if recv_budget is not None:
        server_config = replace(server_config, recv_budget=recv_budget)
    ctx = multiprocessing.get_context("spawn")
    server_pipe, server_end = ctx.Pipe()
    client_pipe, client_end = ctx.Pipe()
    srv = ctx.Process(target=server, args=(name, server_config, total, server_end), daemon=True)
    srv.start()
    addr = server_pipe.recv()
    cli = ctx.Process(
        target=client, args=(name, client_config, total, addr, client_end), daemon=True
    )
    cli.start()
    try:
        if not server_pipe.poll(300):
            raise RuntimeError("no result within 300 s")
        server_result = server_pipe.recv()
        client_result = client_pipe.recv()
    finally:
        cli.join(10)
        srv.join(10)
        for proc in (cli, srv):
            if proc.is_alive():
                proc.terminate()
    if server_result["received"] != total:
        raise RuntimeError(f"received {server_result['received']} of {total} bytes")
    gb = total / 1e9
    return {
        "engine": name,
        "bytes": total,
        "pacing": pacing,
        "recv_budget": recv_budget,
        "mb_per_s": total / 1e6 / server_result["elapsed"],
        "client_cpu_s_per_gb": client_result["cpu"] / gb,
        "server_cpu_s_per_gb": server_result["cpu"] / gb,
        "client_stats": client_result["stats"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", action="append", choices=available_engines())
    parser.add_argument("--mib", type=int, default=200, help="bytes to send, MiB")
    parser.add_argument("--no-pacing", action="store_true", help="aioquic only")
    parser.add_argument("--recv-budget", type=int, help="qh3 server receive budget, bytes")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    results = []
    for name in args.engine or available_engines():
        result = bench(name, args.mib * 1024 * 1024, not args.no_pacing, args.recv_budget)
        results.append(result)
        print(
            f"{name:8} {result['mb_per_s']:7.1f} MB/s   CPU s/GB client "
            f"{result['client_cpu_s_per_gb']:6.1f}  server {result['server_cpu_s_per_gb']:6.1f}"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
