"""The use-case services between two py-libp2p hosts on our transport: upload, fetch by CID,
gossip; plus their refusals of bad input. (The browser side is tests/browser/test_usecases.py.)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import trio
from libp2p.network.stream.exceptions import StreamReset
from support.wt_helpers import peer_info, wt_host

from py_libp2p_webtransport.apps.files import (
    FETCH_PROTOCOL,
    ContentStore,
    FileService,
    check_cid,
    fetch,
    make_cid,
    upload,
)
from py_libp2p_webtransport.apps.gossip import (
    mesh_peers,
    publish_with_backpressure,
    running_pubsub,
    topic_peers,
)
from py_libp2p_webtransport.errors import ContentError

MiB = 1024 * 1024
# The CID IPFS gives the empty file with raw leaves (`ipfs add --raw-leaves --cid-version 1`).
EMPTY_RAW_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_make_cid_matches_ipfs() -> None:
    assert make_cid(b"") == EMPTY_RAW_CID
    assert check_cid(EMPTY_RAW_CID) == EMPTY_RAW_CID


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # CIDv0: not what we serve
        "b!!!!",
        "bafy",  # too short to hold a multihash
        "b" + "a" * 200,
        make_cid(b"x")[:-1] + "!",
    ],
)
def test_check_cid_refuses_malformed(bad: str) -> None:
    with pytest.raises(ContentError):
        check_cid(bad)


def test_store_chunks_and_lists_blocks() -> None:
    store = ContentStore(block_size=1000)
    data = os.urandom(2500)
    entry = store.add_file(data)
    assert [len(store.blocks[c]) for c in entry.blocks] == [1000, 1000, 500]
    assert b"".join(store.blocks_for(entry.cid)[1:]) == data
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(ContentError, match="unknown CID"):
        store.blocks_for(make_cid(b"not stored"))


async def test_upload_then_fetch_back(engine: str) -> None:
    service = FileService()
    data = os.urandom(3 * MiB + 17)
    with trio.fail_after(60):
        async with wt_host(engine) as server, wt_host(engine) as client:
            for proto, handler in service.handlers().items():
                server.set_stream_handler(proto, handler)  # type: ignore[arg-type]
            await client.connect(peer_info(server))
            answer = await upload(client, server.get_id(), data)
            assert answer["sha256"] == hashlib.sha256(data).hexdigest()
            assert answer["bytes"] == len(data)
            assert service.uploads[0].sha256 == answer["sha256"]
            got = await fetch(client, server.get_id(), str(answer["cid"]))
            assert got == data
            # A single raw block can be fetched by its own CID too.
            leaf = service.uploads[0].blocks[-1]
            assert await fetch(client, server.get_id(), leaf) == data[-17:]


async def test_fetch_refusals_reach_the_client(engine: str) -> None:
    service = FileService()
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            for proto, handler in service.handlers().items():
                server.set_stream_handler(proto, handler)  # type: ignore[arg-type]
            await client.connect(peer_info(server))
            with pytest.raises(ContentError, match="unknown CID"):
                await fetch(client, server.get_id(), make_cid(b"nobody has this"))
            with pytest.raises(ContentError, match="not a base32 CIDv1"):
                await fetch(client, server.get_id(), "hello")
            # A request line that never ends within the limit.
            stream = await client.new_stream(server.get_id(), [FETCH_PROTOCOL])
            await stream.write(b"b" * 2000)
            reply = await stream.read(4096)
            assert reply[:1] == b"\x01" and b"too long" in reply


async def test_upload_over_the_limit_is_reset(engine: str) -> None:
    service = FileService(max_upload=1 * MiB)
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            for proto, handler in service.handlers().items():
                server.set_stream_handler(proto, handler)  # type: ignore[arg-type]
            await client.connect(peer_info(server))
            with pytest.raises(StreamReset):
                await upload(client, server.get_id(), os.urandom(2 * MiB))
            assert service.uploads == []


async def test_gossip_between_two_python_hosts(engine: str) -> None:
    topic = "apps-test"
    with trio.fail_after(60):
        async with wt_host(engine) as a, wt_host(engine) as b:
            async with running_pubsub(a) as pa, running_pubsub(b) as pb:
                sub_b = await pb.subscribe(topic)
                await pa.subscribe(topic)
                await b.connect(peer_info(a))
                while b.get_id() not in topic_peers(pa, topic) & mesh_peers(pa, topic):
                    await trio.sleep(0.05)
                for i in range(50):
                    await publish_with_backpressure(pa, topic, f"m{i}".encode())
                got = [(await sub_b.get()).data.decode() for _ in range(50)]
                assert sorted(got) == sorted(f"m{i}" for i in range(50))


async def _serve_demo_error(demo_dir: Path) -> str:
    cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", "--demo"]
    cmd += ["--demo-dir", str(demo_dir)]
    with trio.fail_after(60):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 2
    return proc.stderr.decode()


async def test_serve_demo_without_bundle_says_how_to_build(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")  # a source checkout's demo/, not built
    assert f"cd {tmp_path} && npm ci && npm run build" in await _serve_demo_error(tmp_path)


async def test_serve_demo_from_an_installed_package_says_where_the_page_is_built(
    tmp_path: Path,
) -> None:
    # An installed package: the default demo folder does not exist.
    error = await _serve_demo_error(tmp_path / "demo")
    assert "in a source checkout" in error
    assert "`cd demo && npm ci && npm run build`" in error
    assert "--demo-dir <checkout>/demo" in error
