"""The README's host example, run as written in its own process, prints addresses a peer dials
(``tests/browser/test_readme_chromium.py``: and Chromium)."""

from __future__ import annotations

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.wt_helpers import packaged_host, readme_host_running

from py_libp2p_webtransport.conn import WebTransportConnection


async def test_readme_host_example_prints_dialable_addresses(engine: str) -> None:
    with trio.fail_after(60):
        async with readme_host_running() as (wt, tcp):
            for addr in (wt, tcp):  # a fresh client each: a connection over that address only
                async with packaged_host(engine) as client:
                    peer = ID.from_base58(addr.rsplit("/p2p/", 1)[1])
                    await client.connect(PeerInfo(peer, [Multiaddr(addr)]))
                    conns = client.get_network().get_connections(peer)
                    ours = [isinstance(c.muxed_conn, WebTransportConnection) for c in conns]
                    assert ours == [addr == wt], f"{addr}: {conns}"
