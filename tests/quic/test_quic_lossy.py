"""``/quic-v1`` through a lossy, duplicating, reordering path (``support.lossy_proxy``), on each
engine: concurrent echoes and an 8 MiB echo arrive byte-exact."""

from __future__ import annotations

import os

import pytest
import trio
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.lossy_proxy import Faults, LossyProxy
from test_quic_transport import addrs_of, host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL


async def echo_exact(client: object, peer: object, payload: bytes) -> bytes:
    stream = await client.new_stream(peer, [ECHO_PROTOCOL])  # type: ignore[attr-defined]
    out = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.write, payload)
        while len(out) < len(payload):
            out += await stream.read(len(payload) - len(out))
    await stream.close()
    return bytes(out)


@pytest.mark.slow  # ~10 s each: 8 MiB through 3 % loss
@pytest.mark.parametrize("seed", [7, 8])
async def test_echoes_through_a_lossy_path(engine: str, seed: int) -> None:
    faults = Faults(loss=0.03, duplicate=0.02, reorder=0.03, delayed=0.05, jitter=0.003)
    with trio.fail_after(90):
        async with host(engine) as server, host(engine, ()) as client:
            (addr,) = addrs_of(server)
            port = int(addr.value_for_protocol("udp"))
            proxy = LossyProxy(("127.0.0.1", port), faults, seed=seed)
            async with trio.open_nursery() as nursery:
                await nursery.start(proxy.run)
                proxied = Multiaddr(f"/ip4/127.0.0.1/udp/{proxy.address[1]}/quic-v1")
                await client.connect(PeerInfo(server.get_id(), [proxied]))
                payloads = [os.urandom(1 + (i * 37) % 4000) for i in range(100)]
                results: dict[int, bytes] = {}

                async def one(i: int) -> None:
                    results[i] = await echo_exact(client, server.get_id(), payloads[i])

                async with trio.open_nursery() as echoes:
                    for i in range(len(payloads)):
                        echoes.start_soon(one, i)
                assert results == dict(enumerate(payloads))
                big = os.urandom(8 * 1024 * 1024)
                assert await echo_exact(client, server.get_id(), big) == big
                assert proxy.stats.dropped > 0 and proxy.stats.duplicated > 0
                nursery.cancel_scope.cancel()
            proxy.close()
