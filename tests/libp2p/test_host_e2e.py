"""End to end through ``new_host``: ping, identify, echo, many streams, reset and half-close."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing
from libp2p.custom_types import TProtocol
from libp2p.host.ping import PingService
from libp2p.identity.identify.identify import ID as IDENTIFY
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.network.stream.net_stream import NetStream
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedStreamReset
from multiaddr import Multiaddr
from support.wt_helpers import peer_info, transport_of, wt_addrs, wt_host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.stream import WebTransportStream

RESET_PROTOCOL = TProtocol("/test/reset/1.0.0")
HALF_CLOSE_PROTOCOL = TProtocol("/test/half-close/1.0.0")


async def read_all(stream: NetStream) -> bytes:
    """Everything until the peer's FIN (our streams end with StreamEOF, as yamux's do)."""
    out = bytearray()
    while True:
        try:
            out += await stream.read(1 << 20)
        except StreamEOF:
            return bytes(out)


async def echo_roundtrip(client, server_id: ID, payload: bytes) -> bytes:  # type: ignore[no-untyped-def]
    stream = await client.new_stream(server_id, [ECHO_PROTOCOL])
    got = bytearray()

    async def reader() -> None:
        got.extend(await read_all(stream))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)  # read while writing: the echo must never block on us
        await stream.write(payload)
        await stream.close()
    return bytes(got)


async def test_listen_addrs_are_complete(engine: str) -> None:
    with trio.fail_after(20):
        async with wt_host(engine) as server:
            (addr,) = wt_addrs(server)
            protos = [p.name for p in addr.protocols()]
            assert protos == ["ip4", "udp", "quic-v1", "webtransport", "certhash", "certhash"]
            assert int(addr.value_for_protocol("udp")) != 0
            full = [str(a) for a in server.get_addrs()]
            assert any(a.endswith(f"/p2p/{server.get_id()}") for a in full)


async def test_ping_and_connection_type(engine: str) -> None:
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            rtts = await PingService(client).ping(server.get_id(), ping_amt=5)
            assert len(rtts) == 5 and all(r >= 0 for r in rtts)
            conns = client.get_network().get_connections(server.get_id())
            assert conns and isinstance(conns[0].muxed_conn, WebTransportConnection)
            (transport_addr,) = conns[0].get_transport_addresses()
            assert "/udp/" in str(transport_addr) and "/tcp/" not in str(transport_addr)
            assert "webtransport" in str(transport_addr)


async def test_identify(engine: str) -> None:
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [IDENTIFY])
            response = await read_all(stream)
            identify = parse_identify_response(response)
            assert identify.public_key == server.get_public_key().serialize()
            listen = [str(Multiaddr(a)) for a in identify.listen_addrs]
            assert any("/webtransport/certhash/" in a for a in listen)
            assert str(ECHO_PROTOCOL) in identify.protocols
            # The observed address is our UDP address as seen by the server.
            assert identify.observed_addr


async def test_echo_small_and_1mib(engine: str) -> None:
    with trio.fail_after(60):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            assert await echo_roundtrip(client, server.get_id(), b"hello") == b"hello"
            payload = os.urandom(1 << 20)
            assert await echo_roundtrip(client, server.get_id(), payload) == payload


async def test_1000_sequential_streams(engine: str) -> None:
    with trio.fail_after(120):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            for i in range(1000):
                msg = f"stream {i}".encode()
                assert await echo_roundtrip(client, server.get_id(), msg) == msg


async def test_100_concurrent_streams(engine: str) -> None:
    with trio.fail_after(120):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            results: dict[int, bytes] = {}
            payloads = {i: os.urandom(10_000 + i) for i in range(100)}

            async def one(i: int) -> None:
                results[i] = await echo_roundtrip(client, server.get_id(), payloads[i])

            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(one, i)
            assert results == payloads


async def test_peer_reset_is_not_eof(engine: str) -> None:
    """A reset by the peer raises StreamReset on read and on write, never a clean EOF."""
    reset_done = trio.Event()

    async def reset_handler(stream: NetStream) -> None:
        await stream.read(5)
        await stream.reset()
        reset_done.set()

    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            server.set_stream_handler(RESET_PROTOCOL, reset_handler)
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [RESET_PROTOCOL])
            await stream.write(b"hello")
            await reset_done.wait()
            raw = stream.muxed_stream
            assert isinstance(raw, WebTransportStream)
            with pytest.raises(MuxedStreamReset):
                await raw.read(100)
            with pytest.raises(MuxedStreamReset):
                await raw.write(b"more")
            # Through py-libp2p's NetStream the same surfaces as its StreamReset.
            with pytest.raises(StreamReset):
                await stream.read(100)


async def test_half_close(engine: str) -> None:
    """After our FIN the peer reads EOF and can still answer on its half."""

    async def handler(stream: NetStream) -> None:
        data = await read_all(stream)  # until our FIN
        await stream.write(b"got " + str(len(data)).encode())
        await stream.close()

    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            server.set_stream_handler(HALF_CLOSE_PROTOCOL, handler)
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [HALF_CLOSE_PROTOCOL])
            await stream.write(b"a" * 70_000)
            await stream.close_write()
            assert await read_all(stream) == b"got 70000"
            with pytest.raises(StreamEOF):  # EOF stays EOF
                await stream.read(10)


async def test_local_reset_code_reaches_peer(engine: str) -> None:
    """``reset(code)`` on the raw stream: the peer's stream sees a reset (not EOF)."""
    seen: list[BaseException] = []
    done = trio.Event()

    async def handler(stream: NetStream) -> None:
        try:
            await read_all(stream)
        except BaseException as error:  # noqa: B036 - recorded for the assertion
            seen.append(error)
        done.set()

    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            server.set_stream_handler(RESET_PROTOCOL, handler)
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [RESET_PROTOCOL])
            await stream.write(b"partial")
            raw = stream.muxed_stream
            assert isinstance(raw, WebTransportStream)
            await raw.reset(7)
            await done.wait()
            assert len(seen) == 1 and isinstance(seen[0], StreamReset)


SLOW_PROTOCOL = TProtocol("/test/slow-reader/1.0.0")


async def test_writer_waits_for_a_slow_reader(engine: str) -> None:
    """A reader that does not read holds the writer back: nothing is queued without bound, and
    everything arrives once the reader catches up."""
    total = 32 * 1024 * 1024
    chunk = 64 * 1024
    start_reading = trio.Event()
    done = trio.Event()
    received: list[bytes] = []

    async def slow_handler(stream: NetStream) -> None:
        await start_reading.wait()
        received.append(await read_all(stream))
        done.set()

    with trio.fail_after(120):
        async with wt_host(engine) as server, wt_host(engine) as client:
            server.set_stream_handler(SLOW_PROTOCOL, slow_handler)
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [SLOW_PROTOCOL])
            written = 0
            block = os.urandom(chunk)

            async def writer() -> None:
                nonlocal written
                while written < total:
                    await stream.write(block)
                    written += chunk
                await stream.close()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await trio.testing.wait_all_tasks_blocked(cushion=0.2)
                # Stuck: at most the peer's receive window plus our send-buffer bound in flight.
                # (qh3 can only bound unread data per connection, by max_data: see engine/qh3.py.)
                config = transport_of(client).config
                held = config.max_stream_data + (config.max_data if engine == "qh3" else 0)
                assert written < total
                assert written <= held + config.write_buffer_limit + chunk
                start_reading.set()
            await done.wait()
    assert received == [block * (total // chunk)]


STOP_PROTOCOL = TProtocol("/test/stop-reading/1.0.0")


async def test_reader_closing_early_stops_the_writer(engine: str) -> None:
    """``close_read`` on one side sends STOP_SENDING: the other side's writes fail as a reset
    instead of filling buffers nobody reads."""
    stopped = trio.Event()

    async def handler(stream: NetStream) -> None:
        await stream.read(5)
        raw = stream.muxed_stream
        assert isinstance(raw, WebTransportStream)
        await raw.close_read()
        stopped.set()
        await trio.sleep_forever()  # keep the stream open; only the read side is closed

    with trio.fail_after(60):
        async with wt_host(engine) as server, wt_host(engine) as client:
            server.set_stream_handler(STOP_PROTOCOL, handler)
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [STOP_PROTOCOL])
            await stream.write(b"hello")
            await stopped.wait()
            raw = stream.muxed_stream
            assert isinstance(raw, WebTransportStream)
            block = bytes(64 * 1024)
            with pytest.raises(MuxedStreamReset):
                for _ in range(1024):  # 64 MiB: far more than any window; must fail before
                    await raw.write(block)
            # Our read side is untouched by the peer's STOP_SENDING.
            assert raw.describe().startswith("read=open write=stopped-by-peer ")


async def test_describe_shows_the_connection_and_its_streams(engine: str) -> None:
    """The diagnostics dump (browser failure messages, later ``serve``'s status) names the QUIC
    figures and every open stream with its states."""
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            await stream.write(b"hello")
            assert await stream.read(5) == b"hello"
            (conn,) = client.get_network().get_connections(server.get_id())
            dump = conn.muxed_conn.describe()
            first, *streams = dump.splitlines()
            assert "closed=False" in first and "paused=False" in first
            assert "rtt=" in dump and "cwnd=" in dump
            assert any(": read=open write=open " in line for line in streams), dump
            await stream.close()
