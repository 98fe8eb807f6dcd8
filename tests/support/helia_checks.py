"""Helia use cases run in either browser (tests/browser/test_helia*.py): the page's plan steps are
in demo/src/usecases.js, the Python side is apps/bitswap.py and apps/unixfs.py."""

from __future__ import annotations

import hashlib
import json
import os
import time

import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from support.browser_harness import served_host
from support.usecases_harness import run_usecases

from py_libp2p_webtransport.apps.bitswap import Bitswap, running_bitswap
from py_libp2p_webtransport.apps.files import ContentStore, FileService
from py_libp2p_webtransport.apps.ipld import CID, BlockStore
from py_libp2p_webtransport.apps.unixfs import cat, import_file

MiB = 1024 * 1024
NOTIFY = TProtocol("/py-libp2p-webtransport/test-notify/1.0.0")


async def cat_both_ways(engine: str, size: int, browser: str) -> None:
    """Our fetch protocol and Helia's unixfs.cat of the same bytes, in one browser run."""
    data = os.urandom(size)
    service = FileService(ContentStore())
    ours = service.store.add_file(data)
    store = BlockStore()
    root = import_file(data, store)
    handlers = dict(service.handlers())
    async with (
        served_host(engine, handlers=handlers) as served,
        running_bitswap(served.host, store),
    ):
        steps = [
            {"op": "startHelia"},
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "fetch", "cid": ours.cid},
            {"op": "heliaCat", "cid": str(root.cid), "timeoutMs": 110000},
        ]
        report = await run_usecases(steps, timeout=150, browser=browser)
    digest = hashlib.sha256(data).hexdigest()
    fetched, helia = report.ok_step("fetch"), report.ok_step("heliaCat")
    assert (fetched["bytes"], fetched["sha256"]) == (size, digest)
    assert (helia["bytes"], helia["sha256"]) == (size, digest)
    print(
        f"\npython->{browser} {size // MiB} MiB ({engine}): our fetch protocol "
        f"{fetched['MBps']:.1f} MB/s, Helia unixfs.cat over Bitswap {helia['MBps']:.1f} MB/s"
    )


async def python_fetches_what_the_browser_added(engine: str, browser: str) -> None:
    """The page adds 10 MiB with unixfs.addBytes (Kubo's options) and names its CID to the node,
    which fetches the file from the page over Bitswap and answers its sha256."""
    fetched: list[bytes] = []

    async def fetch_announced(bitswap: Bitswap, stream: INetStream) -> None:
        # The browser names a CID it added; fetch the file from it over Bitswap and answer.
        request = b""
        while chunk := await _read(stream):
            request += chunk
        cid = CID.parse(json.loads(request)["cid"])
        peers = [stream.muxed_conn.peer_id]

        async def get(c: CID) -> bytes:
            return await bitswap.get(c, peers)

        async def get_many(cs: list[CID]) -> list[bytes]:
            return await bitswap.get_many(cs, peers)

        t0 = time.perf_counter()
        data = await cat(get, cid, get_many)
        secs = time.perf_counter() - t0
        fetched.append(data)
        answer = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        answer["MBps"] = len(data) / 1e6 / secs
        await stream.write(json.dumps(answer).encode())
        await stream.close()

    async with served_host(engine) as served, running_bitswap(served.host) as bitswap:
        served.host.set_stream_handler(NOTIFY, lambda s: fetch_announced(bitswap, s))
        steps = [
            {"op": "startHelia"},
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "heliaAdd", "bytes": 10 * MiB, "protocol": NOTIFY},
        ]
        with trio.fail_after(150):
            report = await run_usecases(steps, browser=browser)
    added = report.ok_step("heliaAdd")
    (data,) = fetched
    assert added["answer"]["sha256"] == added["sha256"] == hashlib.sha256(data).hexdigest()
    # The browser's CID (Kubo's options) is the one our importer gives the same bytes.
    assert added["cid"] == str(import_file(data, BlockStore()).cid)
    print(f"\n{browser}->python 10 MiB ({engine}): Bitswap {added['answer']['MBps']:.1f} MB/s")


async def _read(stream: INetStream) -> bytes:
    try:
        return await stream.read(1 << 16)
    except StreamEOF:
        return b""
