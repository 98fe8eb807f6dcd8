"""Interop with an independent libp2p QUIC stack: js-libp2p 3 in Node with
``@chainsafe/libp2p-quic`` (Rust quinn), both directions, on each of our engines.

The Node peer is ``tests/interop/node_quic/peer.mjs`` (npm packages pinned by its lockfile, set up
with ``npm ci`` there; the test is skipped with a message when they are missing, and fails under
``CI``). Checks: dial with mutual TLS, ping, identify, an 8 MiB echo byte-exact, 100 concurrent
echoes byte-exact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.abc import IHost
from libp2p.host.ping import PingService
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.wt_helpers import read_to_end

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL, register_handlers
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.host import new_host
from py_libp2p_webtransport.quic_conn import QuicConnection

pytestmark = pytest.mark.interop

PEER_DIR = Path(__file__).resolve().parent / "node_quic"
QUIC_V4 = "/ip4/127.0.0.1/udp/0/quic-v1"
ECHO_BYTES = 8 * 1024 * 1024
CONCURRENT = 100


@pytest.fixture
def node_peer() -> list[str]:
    """The command that runs the Node peer (skip, or fail under CI, when it is not set up)."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not installed"
    elif not (PEER_DIR / "node_modules" / "@chainsafe" / "libp2p-quic").is_dir():
        missing = "the Node QUIC peer's packages are missing (cd tests/interop/node_quic && npm ci)"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return [node, str(PEER_DIR / "peer.mjs")]


@asynccontextmanager
async def our_host(engine: str, listen: bool = True) -> AsyncIterator[IHost]:
    addrs = [Multiaddr(QUIC_V4)] if listen else []
    h = new_host(listen_addrs=addrs, tcp=False, config=WebTransportConfig(engine=engine))
    register_handlers(h)
    async with h.run(listen_addrs=addrs):
        yield h


def _our_conn(ours: IHost, peer: ID) -> QuicConnection:
    (conn,) = ours.get_network().get_connections(peer)
    muxed: Any = getattr(conn, "muxed_conn", conn)
    assert isinstance(muxed, QuicConnection)
    return muxed


async def echo(client: IHost, peer: ID, payload: bytes) -> bytes:
    """Write ``payload`` while reading as many bytes back, then close."""
    stream = await client.new_stream(peer, [ECHO_PROTOCOL])
    out = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, payload)
        while len(out) < len(payload):
            out += await stream.read(len(payload) - len(out))
    await stream.close()
    return bytes(out)


async def test_node_dialer_to_our_listener(engine: str, node_peer: list[str]) -> None:
    with trio.fail_after(90):
        async with our_host(engine) as server:
            addr = next(
                a for a in server.get_addrs() if str(a).split("/p2p/")[0].endswith("quic-v1")
            )
            plan = {"pings": 3, "echoBytes": ECHO_BYTES, "concurrent": CONCURRENT}
            result = await trio.run_process(
                [*node_peer, "dial", str(addr), json.dumps(plan)],
                capture_stdout=True,
                cwd=PEER_DIR,
            )
            report = json.loads(result.stdout.decode().strip().splitlines()[-1])
            assert report["ok"], report
            steps = report["steps"]
            assert steps["dial"]["remotePeer"] == str(server.get_id())
            assert len(steps["ping"]["rtts"]) == 3
            assert steps["echo"] == {"sent": ECHO_BYTES, "received": ECHO_BYTES, "exact": True}
            assert steps["concurrent"]["exact"] == CONCURRENT, steps["concurrent"]
            # Our identify answer: the Node peer's UDP /quic-v1 address as we observed it.
            assert steps["identify"]["observedAddr"] is not None
            observed = steps["identify"]["observedAddr"]
            assert observed.startswith("/ip4/127.0.0.1/udp/") and observed.endswith("/quic-v1")


async def test_our_dialer_to_node_listener(engine: str, node_peer: list[str]) -> None:
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            proc = await nursery.start(
                lambda task_status=trio.TASK_STATUS_IGNORED: trio.run_process(
                    [*node_peer, "serve"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    cwd=PEER_DIR,
                    task_status=task_status,
                    check=False,
                )
            )
            try:
                line = b""
                while not line.endswith(b"\n"):
                    chunk = await proc.stdout.receive_some(4096)
                    assert chunk, "the Node peer exited before printing its address"
                    line += chunk
                hello = json.loads(line)
                peer = ID.from_base58(hello["peerId"])
                async with our_host(engine) as client:
                    await client.connect(PeerInfo(peer, [Multiaddr(a) for a in hello["addrs"]]))
                    conn = _our_conn(client, peer)
                    assert conn.peer_id == peer
                    rtts = await PingService(client).ping(peer, ping_amt=3)
                    assert len(rtts) == 3
                    stream = await client.new_stream(peer, [IDENTIFY_PROTOCOL])
                    identify = parse_identify_response(await read_to_end(stream))
                    assert ID.from_pubkey(_pubkey(identify.public_key)) == peer
                    (ours,) = [a for a in client.get_transport_addrs() if "quic-v1" in str(a)]
                    observed = _transport_part(Multiaddr(identify.observed_addr))
                    assert observed == _transport_part(ours)
                    payload = os.urandom(ECHO_BYTES)
                    assert await echo(client, peer, payload) == payload
                    results: dict[int, bytes] = {}

                    async def one(i: int) -> None:
                        results[i] = await echo(client, peer, bytes([i]) * (2000 + i))

                    async with trio.open_nursery() as inner:
                        for i in range(CONCURRENT):
                            inner.start_soon(one, i)
                    assert results == {i: bytes([i]) * (2000 + i) for i in range(CONCURRENT)}
            finally:
                await proc.stdin.aclose()  # the peer stops when its stdin ends
                with trio.move_on_after(10) as waited:
                    await proc.wait()
                if waited.cancelled_caught:
                    proc.kill()


def _transport_part(addr: Multiaddr) -> str:
    return str(addr).split("/p2p/")[0]


def _pubkey(data: bytes) -> Any:
    from libp2p.crypto.serialization import deserialize_public_key

    return deserialize_public_key(data)
