"""One host, one UDP port: headless Chromium (js-libp2p over WebTransport), py-libp2p 0.8.1's own
QUIC transport and js-libp2p in Node over ``@chainsafe/libp2p-quic`` all connect to it, on each of
our engines (issue 13's "done when")."""

from __future__ import annotations

import json
import os

import pytest
import trio
from libp2p import new_host as libp2p_new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.quic.transport import QUICTransport
from multiaddr import Multiaddr
from support.browser_harness import run_browser
from test_node_quic import PEER_DIR, node_peer  # noqa: F401  (the fixture)

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL, register_handlers
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.host import new_host

pytestmark = [pytest.mark.interop, pytest.mark.browser]


async def _echo_exact(client: object, peer: object, payload: bytes) -> bytes:
    stream = await client.new_stream(peer, [ECHO_PROTOCOL])  # type: ignore[attr-defined]
    out = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, payload)
        while len(out) < len(payload):
            out += await stream.read(len(payload) - len(out))
    await stream.close()
    return bytes(out)


async def test_browser_pylibp2p_quic_and_node_quic_on_one_port(
    engine: str,
    node_peer: list[str],  # noqa: F811
) -> None:
    listen = [
        Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport"),
        Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1"),
    ]
    server = new_host(listen_addrs=listen, tcp=False, config=WebTransportConfig(engine=engine))
    register_handlers(server)
    with trio.fail_after(150):
        async with server.run(listen_addrs=listen):
            addrs = [str(a) for a in server.get_addrs()]
            (wt,) = [a for a in addrs if "/webtransport/" in a]
            (quic,) = [a for a in addrs if "/quic-v1/p2p/" in a]
            port = Multiaddr(wt).value_for_protocol("udp")
            assert Multiaddr(quic).value_for_protocol("udp") == port
            # 1. A browser over WebTransport.
            report = await run_browser(
                "chromium",
                [
                    {"op": "dial", "addr": wt},
                    {"op": "ping", "count": 3},
                    {"op": "echo", "bytes": 1 << 20, "seed": 7},
                ],
            )
            assert report.ok_step("echo")["exact"] is True
            # 2. py-libp2p's own QUIC transport.
            kp = create_new_key_pair()
            theirs = libp2p_new_host(key_pair=kp, transports=[QUICTransport(kp.private_key)])
            async with theirs.run(listen_addrs=[]):
                await theirs.connect(PeerInfo(server.get_id(), [Multiaddr(quic)]))
                payload = os.urandom(256 * 1024)
                assert await _echo_exact(theirs, server.get_id(), payload) == payload
            # 3. js-libp2p in Node over @chainsafe/libp2p-quic.
            plan = {"pings": 3, "echoBytes": 1 << 20, "concurrent": 10}
            result = await trio.run_process(
                [*node_peer, "dial", quic, json.dumps(plan)], capture_stdout=True, cwd=PEER_DIR
            )
            node_report = json.loads(result.stdout.decode().strip().splitlines()[-1])
            assert node_report["ok"], node_report
            assert node_report["steps"]["echo"]["exact"] is True
            assert node_report["steps"]["concurrent"]["exact"] == 10
            # One socket served all three.
            sockets = {
                id(ep)
                for t in server.get_network().transport_manager.get_transports()  # type: ignore[attr-defined]
                for ep in getattr(t, "endpoints", list)()
            }
            assert len(sockets) == 1
