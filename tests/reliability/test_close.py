"""Close semantics under load: a local close reaches the peer as a clean session close with its
code, a writer blocked on credit raises instead of hanging, and no stream stays readable (not
even its buffered bytes) once its connection died; then the QUIC connection goes away."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.stream_muxer.exceptions import MuxedStreamClosed, MuxedStreamReset
from multiaddr import Multiaddr

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN = Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
SMALL = {"max_data": 256 * 1024, "max_stream_data": 64 * 1024, "write_buffer_limit": 64 * 1024}


@pytest.mark.parametrize("closer", ["client", "server"])
async def test_close_with_pending_writes_and_buffered_reads(engine: str, closer: str) -> None:
    server_conns: list[WebTransportConnection] = []
    arrived = trio.Event()

    async def handler(conn: Any) -> None:
        server_conns.append(conn)
        arrived.set()

    server = WebTransportTransport(
        create_new_key_pair().private_key, WebTransportConfig(engine=engine, **SMALL)
    )
    client = WebTransportTransport(
        create_new_key_pair().private_key, WebTransportConfig(engine=engine, **SMALL)
    )
    listener = server.create_listener(handler)
    with trio.fail_after(30):
        await listener.listen(LISTEN)
        try:
            conn = await client.dial(listener.get_addrs()[0])
            await arrived.wait()
            (peer,) = server_conns
            # A stream whose reader never reads: the writer fills the credit and blocks.
            stream = conn.open_stream_nowait()
            await stream.write(b"hello")
            peer_stream = await peer.accept_wt_stream()
            writer_outcome: list[BaseException | str] = []
            blocked = trio.Event()

            async def writer() -> None:
                try:
                    for _ in range(1000):  # 64 MB: far beyond every window and buffer
                        blocked.set()
                        await stream.write(b"x" * 65536)
                    writer_outcome.append("completed")
                except (MuxedStreamReset, MuxedStreamClosed) as error:
                    writer_outcome.append(error)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await blocked.wait()
                await trio.testing.wait_all_tasks_blocked(cushion=0.1)
                assert not writer_outcome  # stuck on credit, not queueing
                assert peer.session.unread_bytes() > 0  # bytes buffered, never read
                local, remote = (conn, peer) if closer == "client" else (peer, conn)
                await local.close()
            # The pending write raised (nothing can complete on a dead connection).
            (error,) = writer_outcome
            assert isinstance(error, MuxedStreamReset | MuxedStreamClosed), error
            await remote.closed_event.wait()
            # A clean session close, with its code, reached the peer before the QUIC close.
            assert remote.close_reason is not None
            assert "session closed by peer (code 0" in remote.close_reason, remote.close_reason
            # Buffered bytes are not readable after the connection died: reads raise.
            for s in (stream, peer_stream):
                with pytest.raises(MuxedStreamReset):
                    await s.read(10)
            # And the QUIC connections themselves go (close frame, then draining).
            endpoint = listener._endpoint
            while endpoint.connections:
                await trio.sleep(0.05)
        finally:
            await client.close()
            await server.close()
