"""Bitswap between real py-libp2p hosts on our transport, the way Helia and Kubo speak it.

The requester here behaves like `@helia/bitswap`: it writes its wantlist on a stream it opens and
closes, and reads answers only from streams the responder opens.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from support.wt_helpers import peer_info, wt_host

from py_libp2p_webtransport.apps.bitswap import (
    BITSWAP_100,
    BITSWAP_110,
    BITSWAP_120,
    PROTOCOLS,
    Bitswap,
    _MessageReader,
    running_bitswap,
)
from py_libp2p_webtransport.apps.ipld import CID, varint
from py_libp2p_webtransport.apps.unixfs import cat, import_file
from py_libp2p_webtransport.errors import ContentError

KiB = 1024
WAIT = 10  # seconds any awaited condition may take before the test fails


@dataclass
class Answer:
    stream_protocol: str
    message: Message


class HeliaLikeRequester:
    """Sends wantlists on streams it opens and closes; collects what arrives on inbound streams."""

    def __init__(self, host: IHost, protocols: list[TProtocol] = PROTOCOLS) -> None:
        self.host = host
        self.send, self.receive = trio.open_memory_channel[Answer](100)
        for protocol in protocols:
            host.set_stream_handler(protocol, self._inbound)

    async def _inbound(self, stream: INetStream) -> None:
        reader = _MessageReader(stream, 8 * 1024 * 1024)
        while (raw := await reader.next()) is not None:
            message = Message()
            message.ParseFromString(raw)
            await self.send.send(Answer(str(stream.get_protocol()), message))

    async def want(self, peer: ID, *entries: dict[str, object], full: bool = False) -> INetStream:
        message = Message()
        message.wantlist.full = full
        for entry in entries:
            message.wantlist.entries.add(**entry)  # type: ignore[arg-type]
        raw = message.SerializeToString()
        stream = await self.host.new_stream(peer, [BITSWAP_120])
        await stream.write(varint(len(raw)) + raw)
        await stream.close()
        return stream

    async def next_answer(self, protocol: str = BITSWAP_120) -> Message:
        with trio.fail_after(WAIT):
            answer = await self.receive.receive()
        assert answer.stream_protocol == protocol
        return answer.message


def want_block(cid: CID, priority: int = 1, **more: object) -> dict[str, object]:
    return {"block": bytes(cid), "priority": priority, "wantType": Message.Wantlist.Block, **more}


def want_have(cid: CID, **more: object) -> dict[str, object]:
    return {"block": bytes(cid), "wantType": Message.Wantlist.Have, **more}


def blocks_of(message: Message) -> dict[CID, bytes]:
    return {CID.from_prefix(b.prefix, b.data): b.data for b in message.payload}


@asynccontextmanager
async def pair(engine: str) -> AsyncIterator[tuple[IHost, IHost]]:
    async with wt_host(engine) as server, wt_host(engine) as client:
        await client.connect(peer_info(server))
        yield server, client


async def wait_until(condition: object) -> None:
    with trio.fail_after(WAIT):
        while not condition():  # type: ignore[operator]
            await trio.sleep(0.01)


def stored(bitswap: Bitswap, *blocks: bytes) -> list[CID]:
    cids = [CID.of(b) for b in blocks]
    for cid, block in zip(cids, blocks, strict=True):
        bitswap.add_block(cid, block)
    return cids


async def test_blocks_and_presences_come_on_a_stream_the_responder_opens(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        requester = HeliaLikeRequester(client)
        small = os.urandom(100)
        big = os.urandom(200 * KiB)
        (small_cid, big_cid) = stored(bitswap, small, big)
        missing = CID.of(b"nobody has this")
        await requester.want(
            server.get_id(),
            want_block(big_cid),
            want_have(small_cid),  # small enough: the block comes instead of HAVE
            want_have(missing, sendDontHave=True),
        )
        got: dict[CID, bytes] = {}
        dont_have: list[CID] = []
        while len(got) < 2 or not dont_have:
            message = await requester.next_answer()
            got.update(blocks_of(message))
            dont_have += [
                CID.decode(p.cid) for p in message.blockPresences if p.type == Message.DontHave
            ]
        assert got == {small_cid: small, big_cid: big}
        assert dont_have == [missing]


async def test_want_have_of_a_large_block_gets_have(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        requester = HeliaLikeRequester(client)
        (cid,) = stored(bitswap, os.urandom(4 * KiB))
        await requester.want(server.get_id(), want_have(cid))
        message = await requester.next_answer()
        assert not message.payload
        assert [(CID.decode(p.cid), p.type) for p in message.blockPresences] == [
            (cid, Message.Have)
        ]


@pytest.mark.parametrize("protocol", [BITSWAP_110, BITSWAP_100])
async def test_older_peers_get_blocks_in_their_format(engine: str, protocol: TProtocol) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        requester = HeliaLikeRequester(client, [protocol])
        block = os.urandom(2000)
        (cid,) = stored(bitswap, block)
        # 1.0.0 and 1.1.0 have no HAVE/DONT_HAVE: a want-have is answered with the block.
        await requester.want(server.get_id(), want_have(cid, sendDontHave=True))
        message = await requester.next_answer(protocol)
        assert not message.blockPresences
        if protocol == BITSWAP_100:
            assert list(message.blocks) == [block] and not message.payload
        else:
            assert blocks_of(message) == {cid: block} and not message.blocks


async def test_higher_priority_first_and_messages_batched_with_pending_bytes(engine: str) -> None:
    async with (
        pair(engine) as (server, client),
        running_bitswap(server, target_message_size=512 * KiB) as bitswap,
    ):
        requester = HeliaLikeRequester(client)
        blocks = [os.urandom(256 * KiB) for _ in range(6)]
        cids = stored(bitswap, *blocks)
        # Priorities 1..6: the last block is the most wanted.
        await requester.want(server.get_id(), *(want_block(c, i + 1) for i, c in enumerate(cids)))
        order: list[CID] = []
        pending: list[int] = []
        while len(order) < len(cids):
            message = await requester.next_answer()
            assert len(message.payload) <= 2  # 512 KiB per message
            order += list(blocks_of(message))
            pending.append(message.pendingBytes)
        assert order == cids[::-1]
        assert pending == [4 * 256 * KiB, 2 * 256 * KiB, 0]


async def test_a_missing_block_is_sent_when_it_arrives_unless_cancelled(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        requester = HeliaLikeRequester(client)
        peer = client.get_id()
        later, cancelled, other = os.urandom(1000), os.urandom(1000), os.urandom(1000)
        later_cid, cancelled_cid, other_cid = CID.of(later), CID.of(cancelled), CID.of(other)
        await requester.want(
            server.get_id(), want_block(later_cid, sendDontHave=True), want_block(cancelled_cid)
        )
        message = await requester.next_answer()
        assert [CID.decode(p.cid) for p in message.blockPresences] == [later_cid]
        await requester.want(server.get_id(), {"block": bytes(cancelled_cid), "cancel": True})
        await wait_until(lambda: set(bitswap.wants_of(peer)) == {later_cid})
        bitswap.add_block(cancelled_cid, cancelled)  # no longer wanted: not sent
        bitswap.add_block(later_cid, later)
        assert blocks_of(await requester.next_answer()) == {later_cid: later}
        await wait_until(lambda: not bitswap.wants_of(peer))
        stored(bitswap, other)
        await requester.want(server.get_id(), want_block(other_cid))
        assert blocks_of(await requester.next_answer()) == {other_cid: other}
        assert bitswap.stats.blocks_sent == 2


async def test_a_full_wantlist_replaces_the_previous_one(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        requester = HeliaLikeRequester(client)
        peer = client.get_id()
        a, b = CID.of(b"a"), CID.of(b"b")
        await requester.want(server.get_id(), want_block(a))
        await wait_until(lambda: set(bitswap.wants_of(peer)) == {a})
        await requester.want(server.get_id(), want_block(b, 7), full=True)
        await wait_until(lambda: bitswap.wants_of(peer) == {b: (7, True)})


async def test_wants_beyond_the_limit_are_dropped_and_oversized_messages_refused(
    engine: str,
) -> None:
    async with (
        pair(engine) as (server, client),
        running_bitswap(server, max_wants_per_peer=3, max_message_size=64 * KiB) as bitswap,
    ):
        requester = HeliaLikeRequester(client)
        peer = client.get_id()
        await requester.want(server.get_id(), *(want_block(CID.of(bytes([i]))) for i in range(5)))
        await wait_until(lambda: bitswap.stats.wants_dropped == 2)
        assert len(bitswap.wants_of(peer)) == 3
        stream = await client.new_stream(server.get_id(), [BITSWAP_120])
        await stream.write(varint(65 * KiB) + b"\0" * 100)
        await wait_until(lambda: bitswap.stats.bad_messages == 1)
        await stream.reset()


async def test_a_file_fetched_between_two_python_nodes(engine: str) -> None:
    async with (
        pair(engine) as (server, client),
        running_bitswap(server) as serving,
        running_bitswap(client) as fetching,
    ):
        data = os.urandom(3 * 256 * KiB + 5)
        root = import_file(data, serving.store)
        peers = [server.get_id()]

        async def get(cid: CID) -> bytes:
            return await fetching.get(cid, peers)

        async def get_many(cids: list[CID]) -> list[bytes]:
            return await fetching.get_many(cids, peers)

        assert await cat(get, root.cid, get_many) == data
        with pytest.raises(ContentError, match="DONT_HAVE"):
            await fetching.get(CID.of(b"absent"), peers)


async def test_py_libp2p_bitswap_answers_on_the_requesters_stream(engine: str) -> None:
    """Why apps/bitswap.py exists: py-libp2p 0.8.1's BitswapClient writes its answer on the
    stream the requester opened, which Helia has closed. When this test fails, py-libp2p answers
    on a stream of its own and its Bitswap may do for serving browsers."""
    from libp2p.bitswap.client import BitswapClient

    async with pair(engine) as (server, client), trio.open_nursery() as nursery:
        upstream = BitswapClient(server)
        upstream.set_nursery(nursery)
        await upstream.start()
        block = os.urandom(1000)
        cid = CID.of(block)
        await upstream.add_block(bytes(cid), block)
        requester = HeliaLikeRequester(client)
        stream = await requester.want(server.get_id(), want_block(cid))
        with trio.fail_after(WAIT):
            raw = await _MessageReader(stream, 1 << 20).next()
        assert raw is not None
        message = Message()
        message.ParseFromString(raw)
        assert blocks_of(message) == {cid: block}  # on our own stream, not one it opened
        await upstream.stop()
        nursery.cancel_scope.cancel()


async def test_a_peers_wants_are_dropped_when_it_disconnects(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        requester = HeliaLikeRequester(client)
        peer = client.get_id()
        await requester.want(server.get_id(), want_block(CID.of(b"not here")))
        await wait_until(lambda: bool(bitswap.wants_of(peer)))
        await client.disconnect(server.get_id())
        await wait_until(lambda: not bitswap.wants_of(peer))


async def test_undecodable_messages_and_oversized_blocks_are_refused(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(server) as bitswap:
        stream = await client.new_stream(server.get_id(), [BITSWAP_120])
        await stream.write(varint(3) + b"\xff\xff\xff")
        await wait_until(lambda: bitswap.stats.bad_messages == 1)
        with pytest.raises(ContentError, match="exceeds"):
            bitswap.add_block(CID.of(b"x" * (2 * 1024 * KiB + 1)), b"x" * (2 * 1024 * KiB + 1))
        with pytest.raises(ContentError, match="does not match"):
            bitswap.add_block(CID.of(b"a"), b"b")


async def test_fetching_from_a_peer_without_bitswap_fails_clearly(engine: str) -> None:
    async with pair(engine) as (server, client), running_bitswap(client) as fetching:
        with pytest.raises(ContentError, match="could not be asked"):
            await fetching.get(CID.of(b"anything"), [server.get_id()])
        with pytest.raises(ValueError, match="no peers"):
            await fetching.get(CID.of(b"anything"), [])
