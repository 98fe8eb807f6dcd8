"""The DHT from a browser (issue 15, item 4), shared by the Chromium and Firefox tests: two Python
nodes run Kademlia in server mode (apps/dht.py), B joined to A; the page runs `@libp2p/kad-dht` in
client mode (demo/src/dht.js) and is connected only to A over WebTransport.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from support.browser_harness import served_host
from support.usecases_harness import run_usecases

from py_libp2p_webtransport.apps.bitswap import running_bitswap
from py_libp2p_webtransport.apps.dht import own_addrs, running_dht
from py_libp2p_webtransport.apps.ipld import BlockStore
from py_libp2p_webtransport.apps.unixfs import import_file
from py_libp2p_webtransport.multiaddr import parse_webtransport_multiaddr

FILE_SIZE = 3 * 256 * 1024 + 7  # four blocks and a parent


def webtransport_addrs(addrs: list[str]) -> list[str]:
    return [a for a in addrs if "/webtransport" in a]


def assert_dialable_record(found: dict[str, Any], host: Any) -> None:
    """A lookup's answer for ``host``: its current WebTransport addresses, certhashes included."""
    assert found["id"] == str(host.get_id())
    wanted = {str(a) for a in own_addrs(host)}
    got = set(webtransport_addrs(found["multiaddrs"]))
    # js-libp2p may keep a /p2p/ suffix on what it learned; compare without it.
    suffix = f"/p2p/{host.get_id()}"
    assert {a.removesuffix(suffix) for a in got} == wanted, found
    for addr in got:
        assert parse_webtransport_multiaddr(addr).certhashes, addr


async def browser_finds_providers_and_peers(engine: str, browser: str) -> dict[str, float]:
    """findPeer of A itself over the network (py-libp2p 0.8.1 answers it without an address;
    first, so A's answer is the only one) and of B; findProviders of a CID that B provides, then
    a dial of B at the address found and a Helia cat of the file from it. The lookups run a
    second time, warm; last, findProviders and cat of a CID that A provides. Returns the
    timings (ms, and the cat's MB/s)."""
    data, a_data = os.urandom(FILE_SIZE), os.urandom(1000)
    store, a_store = BlockStore(), BlockStore()
    root, a_root = import_file(data, store), import_file(a_data, a_store)
    async with (
        served_host(engine) as a,
        served_host(engine) as b,
        running_dht(a.host) as dht_a,
        running_dht(b.host, bootstrap=[a.host.get_addrs()[0]]) as dht_b,
        running_bitswap(a.host, a_store),
        running_bitswap(b.host, store) as bitswap_b,
    ):
        assert await dht_b.provide_cid(root.cid)  # A took the provider record
        await dht_a.provide_cid(a_root.cid)  # A's own content: in A's provider store
        a_id, b_id = str(a.host.get_id()), str(b.host.get_id())
        lookups = [
            {"op": "findPeer", "peer": a_id, "useCache": False},
            {"op": "findPeer", "peer": b_id, "useCache": False},
            {"op": "findProviders", "cid": str(root.cid)},
        ]
        steps = [
            {"op": "startHelia"},
            {"op": "dial", "addr": a.webtransport_addr},
            *lookups,
            {"op": "dialFound", "peer": b_id},  # at the providers' record's addresses
            {"op": "heliaCat", "cid": str(root.cid)},
            *lookups,  # warm: the DHT is past its first self-query
            {"op": "findProviders", "cid": str(a_root.cid)},
            {"op": "heliaCat", "cid": str(a_root.cid)},
        ]
        report = await run_usecases(
            steps, browser=browser, bundle="dist/dht.js", debug=os.environ.get("WT_DEBUG", "")
        )
        dial = report.ok_step("dial")
        assert dial["remotePeer"] == a_id
        for run in (0, 1):
            assert_dialable_record(report.ok_step("findPeer", 2 * run)["peer"], a.host)
            assert_dialable_record(report.ok_step("findPeer", 2 * run + 1)["peer"], b.host)
            providers = report.ok_step("findProviders", run)["providers"]
            assert [p["id"] for p in providers] == [b_id], providers
            assert_dialable_record(providers[0], b.host)
        assert report.ok_step("dialFound")["remotePeer"] == b_id
        cat = report.ok_step("heliaCat")
        assert cat["sha256"] == hashlib.sha256(data).hexdigest()
        assert bitswap_b.stats.blocks_sent == len(store)  # every block came from B
        a_providers = report.ok_step("findProviders", 2)["providers"]
        assert [p["id"] for p in a_providers] == [a_id], a_providers
        assert_dialable_record(a_providers[0], a.host)
        assert report.ok_step("heliaCat", 1)["sha256"] == hashlib.sha256(a_data).hexdigest()
    timings = {"routing_ms": dial["routingMs"] - dial["dialMs"], "cat_MBps": cat["MBps"]}
    for run, label in ((0, "cold"), (1, "warm")):
        timings[f"find_peer_a_{label}_ms"] = report.step("findPeer", 2 * run)["ms"]
        timings[f"find_peer_b_{label}_ms"] = report.step("findPeer", 2 * run + 1)["ms"]
        timings[f"find_providers_first_{label}_ms"] = report.step("findProviders", run)["firstMs"]
        timings[f"find_providers_{label}_ms"] = report.step("findProviders", run)["totalMs"]
    return timings
