"""Bitswap (``/ipfs/bitswap/1.2.0``, also 1.1.0 and 1.0.0) as Kubo and Helia speak it.

Bitswap streams are one-way: each side sends its messages (wantlists, blocks, HAVE/DONT_HAVE) on
streams it opens itself and only reads from the streams the other side opens. `@helia/bitswap`
closes its stream once its wantlist is written and reads answers only from streams the responder
opens. py-libp2p 0.8.1's ``BitswapClient`` answers on the requester's stream instead
(``_send_wantlist_responses_inline``), so a browser never sees a block; this module is the
replacement. It reuses py-libp2p's protobuf ``Message``; the rest is here:

Serving (what Kubo's engine does): a ledger per peer holds its wants (by multihash, so a CIDv0 and
a CIDv1 of the same bytes are one block), updated by each message (entries, cancels, ``full``
replacing the list). A sender task per peer answers in priority order, on a stream it opens:
the block for a WANT_BLOCK, HAVE for a WANT_HAVE (the block itself when it is at most 1 KiB),
DONT_HAVE once when asked for and missing; blocks are batched up to ``target_message_size`` and
each message carries ``pendingBytes``, the wanted bytes still queued. A want of a missing block
stays in the ledger and is served when the block is added. A peer may hold at most
``max_wants_per_peer`` wants; messages above ``max_message_size`` end the stream.

Fetching: ``get_many`` sends WANT_BLOCK entries (with send-DONT_HAVE) to the given peers, waits
for blocks on the streams they open, verifies each against its CID, and fails a want when every
asked peer said DONT_HAVE.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from ..errors import ContentError
from .ipld import CID, BlockStore, read_varint, varint

log = logging.getLogger(__name__)

BITSWAP_120 = TProtocol("/ipfs/bitswap/1.2.0")
BITSWAP_110 = TProtocol("/ipfs/bitswap/1.1.0")
BITSWAP_100 = TProtocol("/ipfs/bitswap/1.0.0")
PROTOCOLS = [BITSWAP_120, BITSWAP_110, BITSWAP_100]

MAX_MESSAGE_SIZE = 4 * 1024 * 1024  # what Helia and boxo accept
MAX_BLOCK_SIZE = 2 * 1024 * 1024  # the largest block the spec requires peers to carry
TARGET_MESSAGE_SIZE = 1024 * 1024
MAX_WANTS_PER_PEER = 1024
MAX_SIZE_REPLACE_HAVE_WITH_BLOCK = 1024
_READ = 1 << 16

WANT_BLOCK = Message.Wantlist.Block
WANT_HAVE = Message.Wantlist.Have


@dataclass
class _Want:
    cid: CID
    priority: int
    want_block: bool
    send_dont_have: bool
    order: int
    dont_have_sent: bool = False


@dataclass
class _Ledger:
    """What one peer wants from us."""

    wants: dict[bytes, _Want] = field(default_factory=dict)
    wake: trio.Event = field(default_factory=trio.Event)
    running: bool = False


@dataclass
class _Fetch:
    """A block we want: who we asked, who said DONT_HAVE, and its arrival."""

    cid: CID
    asked: set[ID] = field(default_factory=set)
    dont_have: set[ID] = field(default_factory=set)
    done: trio.Event = field(default_factory=trio.Event)
    users: int = 0


@dataclass
class BitswapStats:
    messages_received: int = 0
    messages_sent: int = 0
    blocks_sent: int = 0
    block_bytes_sent: int = 0
    blocks_received: int = 0
    unwanted_blocks: int = 0
    haves_sent: int = 0
    dont_haves_sent: int = 0
    wants_dropped: int = 0
    bad_messages: int = 0


class _MessageReader:
    """Length-prefixed messages from a stream, read in large chunks."""

    def __init__(self, stream: INetStream, max_size: int) -> None:
        self.stream = stream
        self.max_size = max_size
        self.buf = bytearray()

    async def _fill(self) -> bool:
        try:
            data = await self.stream.read(_READ)
        except StreamEOF:
            return False
        if not data:
            return False
        self.buf += data
        return True

    async def next(self) -> bytes | None:
        """The next message, or None at a clean end; ContentError for a bad frame."""
        while True:
            try:
                length, pos = read_varint(self.buf, 0)
                break
            except ContentError:
                if len(self.buf) > 10:
                    raise
                if not await self._fill():
                    if self.buf:
                        raise ContentError("stream ended inside a length prefix") from None
                    return None
        if length > self.max_size:
            raise ContentError(f"message of {length} bytes exceeds {self.max_size}")
        while len(self.buf) < pos + length:
            if not await self._fill():
                raise ContentError("stream ended inside a message")
        message = bytes(self.buf[pos : pos + length])
        del self.buf[: pos + length]
        return message


class Bitswap:
    """A Bitswap peer over one host: serves ``store``'s blocks and fetches missing ones."""

    def __init__(
        self,
        host: IHost,
        store: BlockStore | None = None,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        target_message_size: int | None = None,
        max_wants_per_peer: int = MAX_WANTS_PER_PEER,
    ) -> None:
        if target_message_size is None:
            target_message_size = min(TARGET_MESSAGE_SIZE, max_message_size)
        if not 0 < target_message_size <= max_message_size:
            raise ValueError("target_message_size must be positive and at most max_message_size")
        self.host = host
        self.store = store if store is not None else BlockStore()
        self.max_message_size = max_message_size
        self.target_message_size = target_message_size
        self.max_wants_per_peer = max_wants_per_peer
        self.stats = BitswapStats()
        self._ledgers: dict[ID, _Ledger] = {}
        self._fetches: dict[bytes, _Fetch] = {}
        self._order = itertools.count()
        self._nursery: trio.Nursery | None = None
        self._notifee = _Disconnects(self)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, nursery: trio.Nursery) -> None:
        """Serve the Bitswap protocols; the per-peer senders run in ``nursery``."""
        self._nursery = nursery
        for protocol in PROTOCOLS:
            self.host.set_stream_handler(protocol, self._handle_stream)
        self.host.get_network().register_notifee(self._notifee)

    def stop(self) -> None:
        for protocol in PROTOCOLS:
            self.host.remove_stream_handler(protocol)
        remove = getattr(self.host.get_network(), "remove_notifee", None)
        if remove is not None:
            remove(self._notifee)
        self._nursery = None

    def wants_of(self, peer: ID) -> dict[CID, tuple[int, bool]]:
        """``peer``'s current wantlist as we hold it: CID → (priority, want_block)."""
        ledger = self._ledgers.get(peer)
        if ledger is None:
            return {}
        return {w.cid: (w.priority, w.want_block) for w in ledger.wants.values()}

    # --- the block store ------------------------------------------------------------------------

    def add_block(self, cid: CID, block: bytes) -> None:
        """Store a block (checked against ``cid``) and serve it to peers already wanting it."""
        if len(block) > MAX_BLOCK_SIZE:
            raise ContentError(f"block of {len(block)} bytes exceeds {MAX_BLOCK_SIZE}")
        self.store.put(cid, block)
        fetch = self._fetches.get(cid.multihash)
        if fetch is not None:
            fetch.done.set()
        for peer, ledger in self._ledgers.items():
            if cid.multihash in ledger.wants:
                self._wake(peer, ledger)

    # --- serving --------------------------------------------------------------------------------

    async def _handle_stream(self, stream: INetStream) -> None:
        """Read the peer's messages until it closes; never write here (the stream is theirs)."""
        peer = stream.muxed_conn.peer_id
        reader = _MessageReader(stream, self.max_message_size)
        try:
            while (raw := await reader.next()) is not None:
                message = Message()
                try:
                    message.ParseFromString(raw)
                except Exception as exc:  # protobuf's DecodeError
                    raise ContentError(f"undecodable Bitswap message: {exc}") from exc
                self.stats.messages_received += 1
                self._on_message(peer, message)
        except ContentError as exc:
            self.stats.bad_messages += 1
            log.warning("bitswap: %s from %s; resetting its stream", exc, peer)
            await _reset(stream)
            return
        except StreamError as exc:
            log.debug("bitswap: stream from %s ended: %s", peer, exc)
            return
        await _close(stream)

    def _on_message(self, peer: ID, message: Message) -> None:
        if message.HasField("wantlist"):
            self._on_wantlist(peer, message.wantlist)
        for entry in message.payload:
            self._on_block(peer, CID.from_prefix(entry.prefix, entry.data), entry.data)
        for data in message.blocks:  # Bitswap 1.0.0: no prefix; wants are keyed by multihash
            self._on_block(peer, CID.of(data), data)
        for presence in message.blockPresences:
            if presence.type == Message.DontHave:
                self._on_dont_have(peer, CID.decode(presence.cid))

    def _on_wantlist(self, peer: ID, wantlist: Message.Wantlist) -> None:
        ledger = self._ledgers.setdefault(peer, _Ledger())
        if wantlist.full:
            ledger.wants.clear()
        for entry in wantlist.entries:
            try:
                cid = CID.decode(entry.block)
            except ContentError as exc:
                self.stats.bad_messages += 1
                log.debug("bitswap: want from %s ignored: %s", peer, exc)
                continue
            key = cid.multihash
            if entry.cancel:
                ledger.wants.pop(key, None)
                continue
            if key not in ledger.wants and len(ledger.wants) >= self.max_wants_per_peer:
                self.stats.wants_dropped += 1
                continue
            ledger.wants[key] = _Want(
                cid,
                entry.priority,
                entry.wantType == WANT_BLOCK,
                entry.sendDontHave,
                next(self._order),
            )
        if ledger.wants:
            self._wake(peer, ledger)
        elif not ledger.running:
            del self._ledgers[peer]

    def _wake(self, peer: ID, ledger: _Ledger) -> None:
        ledger.wake.set()
        if not ledger.running and self._nursery is not None:
            ledger.running = True
            self._nursery.start_soon(self._serve_peer, peer, ledger)

    def _next_message(self, ledger: _Ledger, protocol: str) -> Message | None:
        """The next answer for ``ledger`` (highest priority first), or None if nothing is due."""
        message = Message()
        size = 0
        presences = protocol == BITSWAP_120
        for key, want in sorted(
            ledger.wants.items(), key=lambda kv: (-kv[1].priority, kv[1].order)
        ):
            block = self.store.get(want.cid)
            if block is not None:
                if (
                    want.want_block
                    or len(block) <= MAX_SIZE_REPLACE_HAVE_WITH_BLOCK
                    or not presences
                ):
                    if size and size + len(block) > self.target_message_size:
                        continue  # the next message takes it
                    if protocol == BITSWAP_100:
                        message.blocks.append(block)
                    else:
                        message.payload.add(prefix=want.cid.prefix(), data=block)
                    size += len(block)
                    self.stats.blocks_sent += 1
                    self.stats.block_bytes_sent += len(block)
                else:
                    message.blockPresences.add(cid=bytes(want.cid), type=Message.Have)
                    self.stats.haves_sent += 1
                del ledger.wants[key]
            elif want.send_dont_have and not want.dont_have_sent and presences:
                message.blockPresences.add(cid=bytes(want.cid), type=Message.DontHave)
                want.dont_have_sent = True  # the want stays: the block may come later
                self.stats.dont_haves_sent += 1
        if not message.payload and not message.blocks and not message.blockPresences:
            return None
        if presences:
            message.pendingBytes = min(self._pending_bytes(ledger), 2**31 - 1)
        return message

    def _pending_bytes(self, ledger: _Ledger) -> int:
        total = 0
        for want in ledger.wants.values():
            block = self.store.get(want.cid)
            if block is not None and want.want_block:
                total += len(block)
        return total

    async def _serve_peer(self, peer: ID, ledger: _Ledger) -> None:
        """Answer ``peer``'s wants on streams we open, as long as it wants something."""
        try:
            while ledger.wants:
                ledger.wake = trio.Event()
                await self._send_due(peer, ledger)
                if ledger.wants:
                    await ledger.wake.wait()
        except Exception as exc:  # the peer went away or refused the stream
            log.debug("bitswap: serving %s stopped: %s", peer, exc)
            self._ledgers.pop(peer, None)
        finally:
            ledger.running = False
            if not ledger.wants and self._ledgers.get(peer) is ledger:
                del self._ledgers[peer]

    def _has_due(self, ledger: _Ledger) -> bool:
        """Whether some want can be answered now (a block we have, or a DONT_HAVE owed)."""
        return any(
            want.cid in self.store or (want.send_dont_have and not want.dont_have_sent)
            for want in ledger.wants.values()
        )

    async def _send_due(self, peer: ID, ledger: _Ledger) -> None:
        if not self._has_due(ledger):
            return
        # Open first: what a message may carry depends on the version the peer accepts.
        stream = await self.host.new_stream(peer, PROTOCOLS)
        try:
            protocol = str(stream.get_protocol())
            while (message := self._next_message(ledger, protocol)) is not None:
                await self._write(stream, message)
        finally:
            await _close(stream)

    async def _write(self, stream: INetStream, message: Message) -> None:
        raw = message.SerializeToString()
        if len(raw) > self.max_message_size:
            raise ContentError(f"message of {len(raw)} bytes exceeds {self.max_message_size}")
        await stream.write(varint(len(raw)) + raw)
        self.stats.messages_sent += 1

    # --- fetching -------------------------------------------------------------------------------

    def _on_block(self, peer: ID, cid: CID, block: bytes) -> None:
        fetch = self._fetches.get(cid.multihash)
        if fetch is None or fetch.done.is_set():
            self.stats.unwanted_blocks += 1
            return
        if len(block) > MAX_BLOCK_SIZE:
            self.stats.bad_messages += 1
            return
        self.stats.blocks_received += 1
        self.add_block(fetch.cid, block)

    def _on_dont_have(self, peer: ID, cid: CID) -> None:
        fetch = self._fetches.get(cid.multihash)
        if fetch is not None and peer in fetch.asked:
            fetch.dont_have.add(peer)
            if fetch.dont_have >= fetch.asked:
                fetch.done.set()

    async def get(self, cid: CID, peers: Sequence[ID], timeout: float = 30) -> bytes:
        """One block, from the store or from ``peers``."""
        return (await self.get_many([cid], peers, timeout))[0]

    async def get_many(
        self, cids: Sequence[CID], peers: Sequence[ID], timeout: float = 30
    ) -> list[bytes]:
        """Blocks for ``cids`` (in that order), asking ``peers`` for the missing ones in one
        wantlist each; ContentError when all of them say DONT_HAVE or ``timeout`` passes."""
        if not peers:
            raise ValueError("no peers to ask")
        missing = list({c.multihash: c for c in cids if c not in self.store}.values())
        fetches = []
        for cid in missing:
            fetch = self._fetches.setdefault(cid.multihash, _Fetch(cid))
            fetch.users += 1
            fetch.asked.update(peers)
            fetches.append(fetch)
        try:
            if missing:
                await self._send_wants(peers, missing, cancel=False)
                with trio.move_on_after(timeout):
                    for fetch in fetches:
                        await fetch.done.wait()
            out = []
            for cid in cids:
                block = self.store.get(cid)
                if block is None:
                    fetch = self._fetches[cid.multihash]
                    why = (
                        "every peer said DONT_HAVE or could not be asked"
                        if fetch.done.is_set()
                        else "timed out"
                    )
                    raise ContentError(f"block {cid} not fetched: {why}")
                out.append(block)
            return out
        finally:
            unfinished = [f.cid for f in fetches if f.users == 1 and f.cid not in self.store]
            for fetch in fetches:
                fetch.users -= 1
                if fetch.users == 0:
                    self._fetches.pop(fetch.cid.multihash, None)
            if unfinished or len(peers) > 1:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._send_wants(peers, [f.cid for f in fetches], cancel=True)

    async def _send_wants(self, peers: Sequence[ID], cids: Sequence[CID], cancel: bool) -> None:
        message = Message()
        for cid in cids:
            message.wantlist.entries.add(
                block=bytes(cid),
                priority=1,
                cancel=cancel,
                wantType=WANT_BLOCK,
                sendDontHave=not cancel,
            )

        async def send(peer: ID) -> None:
            try:
                stream = await self.host.new_stream(peer, PROTOCOLS)
                await self._write(stream, message)
                await _close(stream)
            except Exception as exc:
                log.debug("bitswap: wantlist to %s failed: %s", peer, exc)
                if not cancel:
                    for cid in cids:
                        self._on_dont_have(peer, cid)

        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(send, peer)


async def _close(stream: INetStream) -> None:
    try:
        await stream.close()
    except Exception as exc:
        log.debug("bitswap: closing a stream: %s", exc)


async def _reset(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception as exc:
        log.debug("bitswap: resetting a stream: %s", exc)


class _Disconnects(INotifee):
    """Drops a peer's ledger when its last connection closes."""

    def __init__(self, bitswap: Bitswap) -> None:
        self.bitswap = bitswap

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id
        if not network.get_connections(peer):
            ledger = self.bitswap._ledgers.pop(peer, None)
            if ledger is not None:
                ledger.wants.clear()
                ledger.wake.set()

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass


@asynccontextmanager
async def running_bitswap(
    host: IHost, store: BlockStore | None = None, **options: Any
) -> AsyncIterator[Bitswap]:
    """Bitswap on ``host`` for the duration of the block."""
    bitswap = Bitswap(host, store, **options)
    async with trio.open_nursery() as nursery:
        bitswap.start(nursery)
        try:
            yield bitswap
        finally:
            bitswap.stop()
            nursery.cancel_scope.cancel()
