"""Kademlia (``/ipfs/kad/1.0.0``) in server mode, answering as browsers' ``@libp2p/kad-dht`` needs.

py-libp2p 0.8.1's ``KadDHT`` fills each peer of a response's ``closerPeers`` from the peerstore.
The host never puts its own addresses there, so when a FIND_NODE's key is the node itself (a
browser's ``findPeer`` of the node it is connected to, or of a peer the node lists as closer) the
node answers with its id and no address: a record nobody can dial. ``DHT`` keeps py-libp2p's DHT and
changes two things:

- the node itself is listed with the host's current addresses (``host.get_addrs()``:
  certhashes included, so they follow certificate rotation), without the ``/p2p/`` suffix, as
  go-libp2p sends them; as a closer peer and as a provider of what it provides (py-libp2p's
  provider record keeps the addresses of the moment it was made);
- the end of a request stream is an end: py-libp2p's handler expects ``read`` to return ``b""``
  when the asker closes, but streams (ours, as py-libp2p's muxers) raise ``StreamEOF``, so it
  logged a warning and reset the stream after every request a browser made.

``tests/apps/test_dht.py`` keeps both of py-libp2p's behaviours visible (strict xfails).

``running_dht(host, bootstrap=[...])`` runs it for the duration of a block, joined to the given
peers (``DHT.join``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from libp2p.abc import IHost, INetStream
from libp2p.kad_dht import DHTMode, KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import InvalidAddrError, info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from .ipld import CID

__all__ = ["DHT", "own_addrs", "running_dht"]

PROTOCOL = "/ipfs/kad/1.0.0"


def own_addrs(host: IHost) -> list[Multiaddr]:
    """The host's current addresses without their ``/p2p/`` suffix."""
    suffix = Multiaddr(f"/p2p/{host.get_id()}")
    out = []
    for addr in host.get_addrs():
        out.append(addr.decapsulate(suffix) if str(addr).endswith(str(suffix)) else addr)
    return out


class _EndReadsEmpty:
    """A stream whose ``read`` returns ``b""`` at the peer's FIN instead of raising
    ``StreamEOF`` (what py-libp2p's DHT handler takes for the end of a stream)."""

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        try:
            return await self._stream.read(n)
        except StreamEOF:
            return b""


class DHT(KadDHT):
    """py-libp2p's ``KadDHT``, listing the node with its addresses (see the module docstring)."""

    def _add_closer_peers_to_response(
        self,
        response: Message,
        closest_peers: Sequence[ID],
        exclude_peer_id: ID | None = None,
    ) -> None:
        super()._add_closer_peers_to_response(response, closest_peers, exclude_peer_id)
        # Every answer passes here last (GET_PROVIDERS fills its providers before): the node
        # itself, as a closer peer or as a provider, gets the host's addresses of now. The
        # peerstore has none for us, and a provider record keeps the addresses of the moment
        # ``provide`` ran (stale certhashes after a rotation).
        mine = self.local_peer_id.to_bytes()
        for peer in (*response.closerPeers, *response.providerPeers):
            if peer.id == mine:
                del peer.addrs[:]
                peer.addrs.extend(addr.to_bytes() for addr in own_addrs(self.host))

    async def handle_stream(self, stream: INetStream) -> None:
        await super().handle_stream(cast(INetStream, _EndReadsEmpty(stream)))

    async def provide_cid(self, cid: CID) -> bool:
        """Announce that this node provides ``cid`` (keyed by its multihash, as Kubo and
        js-libp2p look it up); True when at least one peer took the record."""
        return await self.provider_store.provide(cid.multihash)

    async def join(self, addr: Multiaddr) -> ID:
        """Dial the peer at ``addr`` (with ``/p2p/``), add it to the routing table and look
        ourselves up through it (as go-libp2p's bootstrap does): the peer adds us to its table,
        and we learn the peers it knows near us.

        ``ValueError`` when ``addr`` does not name the peer (no ``/p2p/``)."""
        try:
            info = info_from_p2p_addr(addr)
        except InvalidAddrError as error:
            raise ValueError(f"a DHT peer's address must end in /p2p/<peer id>: {addr}") from error
        await self.host.connect(info)
        await self.add_peer(info.peer_id, skip_server_mode_check=True)
        await self.peer_routing.find_closest_peers_network(self.local_peer_id.to_bytes())
        return info.peer_id


@asynccontextmanager
async def running_dht(
    host: IHost, bootstrap: Sequence[Multiaddr] = (), **options: Any
) -> AsyncIterator[DHT]:
    """A server-mode ``DHT`` on ``host`` for the duration of the block, joined to ``bootstrap``
    (multiaddrs with ``/p2p/``). ``options`` go to py-libp2p's ``KadDHT``."""
    dht = DHT(host, DHTMode.SERVER, **options)
    async with background_trio_service(dht):
        for addr in bootstrap:
            await dht.join(addr)
        yield dht
