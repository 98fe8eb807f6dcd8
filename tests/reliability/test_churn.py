"""Churn soak: many connections opening and closing streams for a while; afterwards RSS, open
file descriptors, trio tasks and every internal registry are back to their baseline."""

from __future__ import annotations

import ctypes
import gc
import os
import resource
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable, MuxedStreamReset
from multiaddr import Multiaddr
from support.rel_helpers import read_all
from test_limits import task_count

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")


def task_names() -> list[str]:
    names, stack = [], [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        names.append(task.name)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return names


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so that RSS measures what
    is still allocated, not the allocator's high-water mark from the busiest moment."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass  # not glibc: RSS then includes retained free pages, the bound is still checked


def rss_bytes() -> int:
    _trim_heap()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def live_objects() -> dict[str, int]:
    """Instances alive of the classes one connection or stream creates (after a collection)."""
    from py_libp2p_webtransport.conn import WebTransportConnection
    from py_libp2p_webtransport.endpoint import EndpointConnection
    from py_libp2p_webtransport.session import WebTransportH3
    from py_libp2p_webtransport.stream import WebTransportStream

    kinds = (WebTransportConnection, WebTransportStream, EndpointConnection, WebTransportH3)
    gc.collect()
    counts = dict.fromkeys((k.__name__ for k in kinds), 0)
    for obj in gc.get_objects():
        if isinstance(obj, kinds):
            counts[type(obj).__name__] += 1
    return counts


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _echo_handler(conn: Any) -> None:
    async def echo(stream: Any) -> None:
        try:
            await stream.write(await read_all(stream))
            await stream.close()
        except MuxedStreamReset:
            pass  # the client went away mid-echo: that is churn

    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await conn.accept_wt_stream()
            except MuxedConnUnavailable:
                return
            nursery.start_soon(echo, stream)


EMPTY = {
    "endpoint.connections": 0,
    "endpoint.routes": 0,
    "endpoint.half_open": 0,
    "listener.connections": 0,
    "listener.pending": 0,
    "transport.connections": 0,
}


def registries(server: WebTransportTransport) -> dict[str, int]:
    (listener,) = server._listeners
    endpoint = listener._endpoint
    return {
        "endpoint.connections": len(endpoint.connections),
        "endpoint.routes": endpoint.route_count,
        "endpoint.half_open": endpoint.half_open,
        # exact: a connection leaves them when it closes
        "listener.connections": len(listener._connections),
        "listener.pending": listener._pending,
        "transport.connections": len(server._connections),
    }


def _report_lingering(server: WebTransportTransport, when: str) -> None:
    """Print what is left of connections that should have gone (to tell a leak from a drain)."""
    (listener,) = server._listeners
    for ep_conn in listener._endpoint.connections:
        engine = ep_conn.engine
        print(
            f"\nlingering {when}: {ep_conn.remote_address} closed={ep_conn.closed} "
            f"handshake_completed={ep_conn.handshake_completed} timer={engine.get_timer()} "
            f"now={trio.current_time():.1f} stats={engine.stats()}"
        )


async def _churn(engine: str, connections: int, seconds: float) -> None:
    server = WebTransportTransport(
        create_new_key_pair().private_key, WebTransportConfig(engine=engine)
    )
    listener = server.create_listener(_echo_handler)
    await listener.listen(LISTEN)
    addr = listener.get_addrs()[0]
    await trio.testing.wait_all_tasks_blocked(cushion=0.05)  # the listener's tasks are up
    idle_tasks = task_count()  # before any connection
    streams = 0

    async def one_client(deadline: float) -> None:
        nonlocal streams
        client = WebTransportTransport(
            create_new_key_pair().private_key, WebTransportConfig(engine=engine)
        )
        try:
            while trio.current_time() < deadline:
                conn = await client.dial(addr)
                for i in range(20):  # each connection: 20 streams, then a new connection
                    stream = await conn.open_stream()
                    await stream.write(b"churn %d" % i)
                    await stream.close()
                    assert await read_all(stream) == b"churn %d" % i
                    streams += 1
                await conn.close()
        finally:
            await client.close()

    try:
        # Warm up with the same load (allocator high-water marks, caches, certificate), so the
        # baseline is steady state: what must not grow is what the churn itself leaves behind.
        async with trio.open_nursery() as nursery:
            warm_deadline = trio.current_time() + min(seconds, 10.0)
            for _ in range(connections):
                nursery.start_soon(one_client, warm_deadline)
        streams = 0
        # A client's CONNECTION_CLOSE is sent once; if the busy loopback drops it, the server
        # connection goes at its idle timeout. So wait that long before calling anything a leak.
        settle = WebTransportConfig().idle_timeout + 5.0
        with trio.move_on_after(settle):  # until the connections and their tasks are gone
            while registries(server) != EMPTY or task_count() > idle_tasks:
                await trio.sleep(0.1)
        _report_lingering(server, "after the warm-up")
        gc.collect()
        base_rss, base_fds, base_tasks = rss_bytes(), open_fds(), task_count()
        base_reg = registries(server)
        assert base_reg == EMPTY, base_reg
        async with trio.open_nursery() as nursery:
            deadline = trio.current_time() + seconds
            for _ in range(connections):
                nursery.start_soon(one_client, deadline)
        with trio.move_on_after(settle):  # the server side drains its closing connections
            while registries(server) != base_reg or task_count() > base_tasks:
                await trio.sleep(0.1)
        _report_lingering(server, "after the churn")
        gc.collect()
        rss, fds, tasks = rss_bytes(), open_fds(), task_count()
        print(
            f"\n{engine}: {connections} connections, {streams} streams in {seconds} s; "
            f"RSS {base_rss / 2**20:.1f} -> {rss / 2**20:.1f} MiB, fds {base_fds} -> {fds}, "
            f"tasks {base_tasks} -> {tasks} (RSS after malloc_trim), "
            f"registries {registries(server)}"
        )
        if tasks > base_tasks:
            print("tasks now:", task_names())
        assert streams > connections
        assert registries(server) == base_reg
        # Exact, unlike RSS: no connection, session or stream object outlives the churn.
        assert live_objects() == dict.fromkeys(live_objects(), 0)
        assert fds <= base_fds
        assert tasks <= base_tasks
        assert rss <= base_rss * 1.05
    finally:
        await server.close()


async def test_short_churn(engine: str) -> None:
    with trio.fail_after(120):
        await _churn(engine, connections=10, seconds=3.0)


@pytest.mark.slow
async def test_churn_soak_50_connections_60_s(engine: str) -> None:
    with trio.fail_after(240):
        await _churn(engine, connections=50, seconds=60.0)
