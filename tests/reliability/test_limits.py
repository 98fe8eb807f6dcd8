"""Limits and hostile peers through the transport API: stalled handshakes are reaped in time
with no leaked task, stream credit comes back as streams close, and a flood of junk datagrams
creates no state, costs little CPU and is logged once per kind."""

from __future__ import annotations

import logging
import random
import socket
import time
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable, MuxedStreamReset
from multiaddr import Multiaddr
from support.rel_helpers import read_all

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.noise import NoiseHandshake
from py_libp2p_webtransport.transport import NOISE_PATH, WebTransportTransport, _authority

LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
ENDPOINT_LOGGER = "py_libp2p_webtransport.endpoint"


def task_count() -> int:
    """Every task in this trio run (the root and all descendants)."""
    count, stack = 0, [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


async def _listening(engine: str, handler: Any, **config: Any) -> tuple[Any, Any]:
    kp = create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine, **config))
    listener = transport.create_listener(handler)
    await listener.listen(LISTEN)
    return transport, listener


async def _session_without_noise(client: WebTransportTransport, port: int, engine: str) -> Any:
    """A QUIC connection with an accepted WebTransport session and nothing else."""
    endpoint = await client._client_endpoint(socket.AF_INET)
    ep_conn = endpoint.connect(
        ("127.0.0.1", port), client.engine_config(is_client=True), engine=engine
    )
    conn = WebTransportConnection(
        ep_conn, is_initiator=True, config=client.config, local_peer=client.local_peer
    )
    await conn.quic_connected.wait()
    conn.request_session(_authority("127.0.0.1", port), NOISE_PATH)
    await conn.session_ready.wait()
    assert conn.session_rejected is None and not conn.is_closed
    return conn


@pytest.mark.parametrize("stall", ["no_noise", "noise_midway"])
async def test_stalled_handshake_is_reaped_without_leaking_tasks(engine: str, stall: str) -> None:
    timeout = 3.0

    async def handler(conn: Any) -> None:
        raise AssertionError("an unauthenticated connection must not reach the handler")

    assert WebTransportConfig().handshake_timeout <= 10.0  # the default reaps within 10 s
    with trio.fail_after(30):
        server, listener = await _listening(engine, handler, handshake_timeout=timeout)
        kp = create_new_key_pair()
        client = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine))
        try:
            (addr,) = listener.get_addrs()
            port = int(addr.value_for_protocol("udp"))
            await client._client_endpoint(socket.AF_INET)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            baseline = task_count()
            started = trio.current_time()
            conn = await _session_without_noise(client, port, engine)
            if stall == "noise_midway":
                # Message 1 goes out, message 2 comes back, message 3 never follows.
                stream = conn.open_stream_nowait()
                noise = NoiseHandshake.initiator(kp.private_key)
                await stream.write(noise.data_to_send())
                assert await stream.read(2)  # the responder answered: it is mid-handshake
            await conn.closed_event.wait()  # the server gave up on us
            reaped = trio.current_time() - started
            print(f"\n{engine}/{stall}: reaped after {reaped:.2f} s (handshake_timeout {timeout})")
            print(f"{engine}/{stall}: client saw {conn.close_reason!r}")
            # Reaped by the handshake deadline (not closed early for another reason); the
            # fail_after above bounds it from above.
            assert reaped >= timeout
            assert "session closed by peer" in (conn.close_reason or "")
            # Then the QUIC connection drains (RFC 9000 §10.2) and every trace of it goes.
            endpoint = listener._endpoint
            with trio.move_on_after(5):
                while endpoint.connections or task_count() > baseline:
                    await trio.sleep(0.05)
            assert endpoint.connections == frozenset() and endpoint.route_count == 0
            assert listener._pending == 0 and not listener._connections
            assert task_count() <= baseline
        finally:
            await client.close()
            await server.close()


async def test_stream_credit_returns_as_streams_close(engine: str) -> None:
    """With MAX_STREAMS 8, 5 rounds of 8 concurrent streams all succeed: each closed stream's
    credit came back (MAX_STREAMS updates), 40 streams over a limit of 8. The CONNECT and Noise
    streams count too, so every round waits for credit in ``open_stream`` (on qh3 this guards
    the stream-id give-back in ``Qh3Engine.send_stream_data``)."""
    got: list[WebTransportConnection] = []
    ready = trio.Event()

    async def handler(conn: Any) -> None:
        got.append(conn)
        ready.set()
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    stream = await conn.accept_wt_stream()
                except MuxedConnUnavailable:
                    return  # the test is over
                nursery.start_soon(_echo, stream)

    async def _echo(stream: Any) -> None:
        try:
            await stream.write(await read_all(stream))
            await stream.close()
        except MuxedStreamReset:
            pass  # the connection closed at the end of the test

    with trio.fail_after(60):
        server, listener = await _listening(engine, handler, max_streams_bidi=8)
        client = WebTransportTransport(
            create_new_key_pair().private_key, WebTransportConfig(engine=engine)
        )
        try:
            conn = await client.dial(listener.get_addrs()[0])
            await ready.wait()
            rounds = 0
            for round_ in range(5):

                async def one(i: int, round_: int = round_) -> None:
                    stream = await conn.open_stream()
                    payload = b"%d/%d" % (round_, i)
                    await stream.write(payload)
                    await stream.close()
                    assert await read_all(stream) == payload

                async with trio.open_nursery() as nursery:
                    for i in range(8):
                        nursery.start_soon(one, i)
                rounds += 1
            assert rounds == 5
        finally:
            await client.close()
            await server.close()


async def test_junk_flood_creates_no_state_and_is_logged_once(
    engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(conn: Any) -> None:
        raise AssertionError("junk must not make a connection")

    rng = random.Random(5)
    total = 10_000
    caplog.set_level(logging.DEBUG, logger=ENDPOINT_LOGGER)
    with trio.fail_after(60):
        server, listener = await _listening(engine, handler)
        try:
            endpoint = listener._endpoint
            (addr,) = listener.get_addrs()
            port = int(addr.value_for_protocol("udp"))
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            before = endpoint.stats.datagrams_received
            cpu = time.process_time()
            for i in range(total):
                size = rng.randint(1, 1500)
                await sock.sendto(rng.randbytes(size), ("127.0.0.1", port))
                if i % 200 == 0:
                    await trio.sleep(0)  # let the pump drain (the kernel buffer is finite)
            while endpoint.stats.datagrams_received - before < total:
                await trio.sleep(0.01)
            cpu = time.process_time() - cpu
            sock.close()
            stats = endpoint.stats.as_dict()
            dropped = sum(v for k, v in stats.items() if k.startswith("dropped_"))
            print(f"\n{engine}: {total} junk datagrams cost {cpu:.3f} s CPU (sender included)")
            print(f"{engine}: {stats}")
            assert dropped == total
            assert endpoint.connections == frozenset() and endpoint.half_open == 0
            assert endpoint.route_count == 0
            assert stats["connections_accepted"] == 0
            # Logged once per kind, not per packet.
            records = [r for r in caplog.records if r.name.startswith(ENDPOINT_LOGGER)]
            kinds = sum(1 for k, v in stats.items() if k.startswith("dropped_") and v)
            assert 0 < len(records) <= kinds, [r.getMessage() for r in records]
        finally:
            await server.close()


def fake_initial(rng: random.Random) -> bytes:
    """A datagram that passes the endpoint's Initial checks (v1, ≥ 1200 bytes, 8-byte DCID) but
    whose payload is noise: it creates a half-open connection the handshake timeout reaps."""
    header = bytes([0xC3]) + (1).to_bytes(4, "big") + b"\x08" + rng.randbytes(8)
    header += b"\x08" + rng.randbytes(8) + b"\x00" + (0x4000 | 1180).to_bytes(2, "big")
    return header + rng.randbytes(1200 - len(header) + 10)


@pytest.mark.parametrize("retry", ["under_load", "off"])
async def test_initial_flood_from_one_source_is_rate_limited(
    engine: str, retry: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One address sending new-connection Initials as fast as it can gets at most its burst of
    half-open connections; another address is still served. Beyond the burst each Initial is
    answered with a stateless Retry (the default, ``retry="under_load"``) or dropped
    (``retry="off"``); either way it is counted."""

    async def handler(conn: Any) -> None:
        raise AssertionError("noise Initials never complete a handshake")

    rng = random.Random(9)
    caplog.set_level(logging.DEBUG, logger=ENDPOINT_LOGGER)
    with trio.fail_after(30):
        server, listener = await _listening(
            engine, handler, max_pending_handshakes=1000, retry=retry
        )
        try:
            endpoint = listener._endpoint
            (addr,) = listener.get_addrs()
            target = ("127.0.0.1", int(addr.value_for_protocol("udp")))
            flooder = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            started = trio.current_time()
            for i in range(300):
                await flooder.sendto(fake_initial(rng), target)
                if i % 50 == 0:
                    await trio.sleep(0)
            while endpoint.stats.datagrams_received < 300:
                await trio.sleep(0.01)
            elapsed = trio.current_time() - started
            flooded = endpoint.stats.connections_accepted
            limited = endpoint.stats.dropped_rate_limited
            retried = endpoint.stats.retries_sent
            print(f"\n{engine}/retry={retry}: 300 Initials from one source in {elapsed:.2f} s:")
            print(f"{flooded} accepted, {limited} rate-limited, {retried} answered with Retry")
            assert flooded + limited + retried == 300
            assert (retried if retry == "off" else limited) == 0
            assert flooded <= 50 + 50 * elapsed + 1  # the burst plus the refill (50/s)
            # Hundreds of refusals, one log line per kind (rate-limited / answered with Retry).
            messages = [
                r.getMessage() for r in caplog.records if r.name.startswith(ENDPOINT_LOGGER)
            ]
            print(f"log lines: {messages}")
            refusal = "Retry" if retry == "under_load" else "rate"
            assert len([m for m in messages if refusal in m]) == 1, messages
            other = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await other.bind(("127.0.0.2", 0))
            await other.sendto(fake_initial(rng), target)
            while endpoint.stats.datagrams_received < 301:
                await trio.sleep(0.01)
            assert endpoint.stats.connections_accepted == flooded + 1  # another source: served
            flooder.close()
            other.close()
        finally:
            await server.close()
