"""``py-libp2p-webtransport serve --demo``: a web page on localhost that dials this node.

Next to the node it serves, over plain HTTP on loopback, a page (built from ``demo/``; where it
is found: ``demo_page.py``) that connects over WebTransport and shows the connection state, ping
RTT, a gossip chat (the node answers every message), a file fetch by CID with progress and
throughput, an upload, the DHT lookup and a video. The node serves a random file of
``--demo-file-mib`` MiB over our fetch protocol and, as UnixFS over Bitswap, to Helia on the page
(with a small directory to list), and the page's ``dist/video.webm`` as UnixFS too (the page
streams it into Media Source Extensions). With the DHT (``serve --demo`` runs it unless
``--no-dht``: ``cli/dht.py``) the node provides the file's and the directory's UnixFS CIDs, and
``/config.json``'s ``dht`` entry tells the page what to look up (``null`` without the DHT).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from libp2p.abc import IHost

from ..apps.bitswap import running_bitswap
from ..apps.files import FileService
from ..apps.gossip import publish_with_backpressure, running_pubsub
from ..apps.ipld import BlockStore
from ..apps.unixfs import import_directory, import_file
from .demo_page import find_page, missing_page

if TYPE_CHECKING:
    from ..apps.dht import DHT

log = logging.getLogger(__name__)

CHAT_TOPIC = "py-libp2p-webtransport/demo-chat"
MAX_REQUEST_HEAD = 8192
# What the page lists with Helia (unixfs.ls); names are sorted as dag-pb sorts them.
DEMO_DIRECTORY = {
    "README.txt": b"A directory the Python node serves over Bitswap, as Kubo would.\n",
    "hello.txt": b"hello from py-libp2p\n",
    "notes/webtransport.txt": b"libp2p streams over WebTransport over QUIC.\n",
}
_STATIC = {
    "/": ("demo.html", "text/html; charset=utf-8"),
    "/index.html": ("demo.html", "text/html; charset=utf-8"),
    "/dist/demo.js": ("dist/demo.js", "text/javascript"),
}


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--demo`` and its options to the ``serve`` parser."""
    g = parser.add_argument_group("demo page (serve --demo)")
    g.add_argument("--demo", action="store_true", help="also serve the demo web page over HTTP")
    g.add_argument("--demo-port", type=int, default=0, help="HTTP port on 127.0.0.1 (default any)")
    g.add_argument("--demo-file-mib", type=int, default=10, help="size of the demo file in MiB")
    g.add_argument(
        "--demo-dir",
        default=None,
        help="a built page folder (demo.html, dist/); default: the page in the package, else "
        "the source checkout's demo/",
    )


async def _serve_http(
    stream: trio.SocketStream, demo_dir: Path, config: Mapping[str, object]
) -> None:
    """Answer one GET (static file or /config.json) and close; anything else is 404/400."""
    head = b""
    with trio.move_on_after(10):
        while b"\r\n\r\n" not in head and len(head) < MAX_REQUEST_HEAD:
            data = await stream.receive_some(4096)
            if not data:
                break
            head += data
    parts = head.split(b"\r\n", 1)[0].split()
    status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
    if len(parts) == 3 and parts[0] == b"GET":
        path = parts[1].decode("latin-1").split("?", 1)[0]
        status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
        if path == "/config.json":
            status, ctype, body = "200 OK", "application/json", json.dumps(config).encode()
        elif path in _STATIC:
            name, ctype = _STATIC[path]
            status, body = "200 OK", (demo_dir / name).read_bytes()
    header = (
        f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
        "cache-control: no-store\r\nconnection: close\r\n\r\n"
    )
    try:
        await stream.send_all(header.encode() + body)
    except trio.BrokenResourceError:
        pass
    await stream.aclose()


async def _chat_responder(host: IHost, pubsub: object) -> None:
    """Answer every chat message from a browser, so the chat shows traffic both ways."""
    from libp2p.pubsub.pubsub import Pubsub

    assert isinstance(pubsub, Pubsub)
    sub = await pubsub.subscribe(CHAT_TOPIC)
    me = host.get_id().to_bytes()
    async for msg in sub:
        if msg.from_id == me:
            continue
        text = msg.data.decode(errors="replace")[:500]
        log.info("chat: %s", text)
        await publish_with_backpressure(pubsub, CHAT_TOPIC, f"python node got: {text}".encode())


def _import_video(path: Path, blocks: BlockStore) -> dict[str, object] | None:
    """The page's WebM as UnixFS (Kubo's layout) for Helia, or None if the build made none."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    cid = import_file(data, blocks).cid
    return {"cid": str(cid), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_demo(args: argparse.Namespace) -> None:
    """Before anything starts: with ``--demo`` but no built page, say how to build it and exit 2."""
    if not getattr(args, "demo", False):
        return
    missing = missing_page(find_page(args.demo_dir))
    if missing is not None:
        print(f"error: {missing}", file=sys.stderr)
        raise SystemExit(2)


@asynccontextmanager
async def running_demo(
    host: IHost, args: argparse.Namespace, dht: DHT | None = None
) -> AsyncIterator[None]:
    """Serve the demo next to a running ``host`` when ``args.demo`` is set (else do nothing);
    with ``dht``, provide the demo's content through it for the page's DHT lookup."""
    if not getattr(args, "demo", False):
        yield
        return
    check_demo(args)
    demo_dir = find_page(args.demo_dir)
    files = FileService()
    for proto, handler in files.handlers().items():
        host.set_stream_handler(proto, handler)  # type: ignore[arg-type]
    data = os.urandom(args.demo_file_mib * 1024 * 1024)
    entry = files.store.add_file(data)
    # The same bytes as a UnixFS file (Kubo's layout) and a small directory, for Helia over Bitswap.
    blocks = BlockStore()
    unixfs_file = import_file(data, blocks)
    unixfs_dir = import_directory(DEMO_DIRECTORY.items(), blocks)
    video = _import_video(demo_dir / "dist" / "video.webm", blocks)
    peer = str(host.get_id())
    provided = {"file": str(unixfs_file.cid), "directory": str(unixfs_dir.cid)}
    addrs = [str(a) for a in host.get_addrs() if "/webtransport/" in str(a)]
    addrs = [a if "/p2p/" in a else f"{a}/p2p/{peer}" for a in addrs]
    config: dict[str, object] = {
        "addrs": addrs,
        "topic": CHAT_TOPIC,
        "file": {"cid": entry.cid, "bytes": entry.size, "sha256": entry.sha256},
        "helia": {
            "file": {"cid": str(unixfs_file.cid), "bytes": entry.size, "sha256": entry.sha256},
            "dir": str(unixfs_dir.cid),
        },
        "video": video,
        # What the page's DHT section looks up: the providers of these CIDs (this node) and
        # the node itself.
        "dht": None if dht is None else {"peer": peer, "cids": provided},
    }
    if dht is not None:
        for cid in (unixfs_file.cid, unixfs_dir.cid):
            await dht.provide_cid(cid)  # in our provider store, and sent to any peers we joined
    async with (
        running_pubsub(host) as pubsub,
        running_bitswap(host, blocks),
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(_chat_responder, host, pubsub)
        handler = partial(_serve_http, demo_dir=demo_dir, config=config)
        listeners = await nursery.start(
            partial(trio.serve_tcp, handler, args.demo_port, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        print(f"demo: open http://127.0.0.1:{port}/ in Chrome or Firefox")
        print(f"demo: page from {demo_dir.resolve()}")
        print(f"demo: file {entry.cid} ({entry.size} bytes, sha256 {entry.sha256})")
        print(f"demo: the same file for Helia (UnixFS over Bitswap) {unixfs_file.cid}")
        print(f"demo: a directory for Helia {unixfs_dir.cid}")
        if dht is None:
            print("demo: no DHT (--no-dht): the page's DHT section has nothing to look up")
        else:
            print(f"demo: dht provider of {unixfs_file.cid} and {unixfs_dir.cid}: {peer}")
        if video is None:
            print("demo: no dist/video.webm in the page folder: the page shows no video")
        else:
            print(f"demo: the video for Helia {video['cid']} ({video['bytes']} bytes)")
        sys.stdout.flush()
        try:
            yield
        finally:
            nursery.cancel_scope.cancel()
