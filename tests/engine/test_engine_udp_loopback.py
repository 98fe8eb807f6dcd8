"""Engines over real UDP sockets on loopback, driven by a minimal trio pump (two tasks).

The endpoint (endpoint.py) owns the real driver; this only shows the adapters behave the same
on a real socket with a real clock: handshake, a 2 MiB echo on one stream, clean close. Datagram
sends are fire-and-forget (a full socket buffer drops, and QUIC recovers), as UDP allows.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from typing import Any

import trio
from support.enginepair import ServerCertificate, initial_dcid

from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    EngineConfig,
    HandshakeCompleted,
    QuicEngine,
    StreamDataReceived,
    create_engine,
)

SIZE = 2 * 1024 * 1024


async def pump(
    sock: socket.socket,
    engine: QuicEngine | None,
    make_engine: Callable[[bytes], QuicEngine] | None,
    on_event: Callable[[QuicEngine, object], None],
) -> QuicEngine | None:
    """One wakeup: wait for datagrams or the timer, feed all, run timer, drain, transmit."""
    timer = engine.get_timer() if engine is not None else None
    timeout = 0.5 if timer is None else max(0.0, timer - trio.current_time())
    with trio.move_on_after(timeout):
        await trio.lowlevel.wait_readable(sock)
    batch, addr = [], None
    while True:  # read until it would block
        try:
            data, addr = sock.recvfrom(65536)
        except BlockingIOError:
            break
        batch.append(data)
    now = trio.current_time()
    if batch and engine is None and make_engine is not None:
        engine = make_engine(batch[0])
    if engine is None:
        return None
    if batch:
        engine.receive_datagrams(batch, addr, now)
    timer = engine.get_timer()
    if timer is not None and timer <= now:
        engine.handle_timer(now)
    while (event := engine.next_event()) is not None:
        on_event(engine, event)
    send_all(sock, engine.datagrams_to_send(now))
    return engine


def send_all(sock: socket.socket, datagrams: list[tuple[bytes, Any]]) -> None:
    for data, to in datagrams:
        try:
            sock.sendto(data, to[:2])
        except BlockingIOError:
            pass  # a full send buffer drops the datagram, like a router would


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def run_pair(client_name: str, server_name: str, cert: ServerCertificate) -> None:
    server_sock, client_sock = udp_socket(), udp_socket()
    server_addr = server_sock.getsockname()
    payload = random.Random(5).randbytes(SIZE)
    echoed = bytearray()
    done = trio.Event()
    server_config = EngineConfig(
        is_client=False, certificate_der=cert.certificate_der, private_key_der=cert.private_key_der
    )

    def server_event(engine: QuicEngine, event: object) -> None:
        if isinstance(event, StreamDataReceived):
            engine.consume(event.stream_id, len(event.data))
            engine.send_stream_data(event.stream_id, event.data, event.end_stream)

    def client_event(engine: QuicEngine, event: object) -> None:
        if isinstance(event, HandshakeCompleted):
            sid = engine.get_next_available_stream_id()
            engine.send_stream_data(sid, payload, end_stream=True)
        elif isinstance(event, StreamDataReceived):
            engine.consume(event.stream_id, len(event.data))
            echoed.extend(event.data)
            if event.end_stream:
                engine.close(0, "done")
        elif isinstance(event, ConnectionTerminated):
            done.set()

    async def serve() -> None:
        engine: QuicEngine | None = None

        def make(first: bytes) -> QuicEngine:
            return create_engine(
                server_name, server_config, original_destination_connection_id=initial_dcid(first)
            )

        while not done.is_set():
            engine = await pump(server_sock, engine, make, server_event)

    async def dial() -> None:
        engine = create_engine(client_name, EngineConfig(is_client=True))
        engine.connect(server_addr, trio.current_time())
        send_all(client_sock, engine.datagrams_to_send(trio.current_time()))
        while not done.is_set():
            await pump(client_sock, engine, None, client_event)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            nursery.start_soon(dial)
    server_sock.close()
    client_sock.close()
    assert bytes(echoed) == payload


async def test_echo_over_real_udp(engine_pair: tuple[str, str], cert: ServerCertificate) -> None:
    await run_pair(*engine_pair, cert)
