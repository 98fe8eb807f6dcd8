"""Certhashes everywhere they belong, across rotations, on real hosts over loopback (``host.py``).

Announced, factory-made and observed WebTransport addresses carry the current pair after each of
three rotations (an injected clock); a rotation found by the listener's own loop is announced:
connected peers get an identify push with the new addresses and signed peer record, and the
address from before the rotation still dials (the two pairs share a certificate).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p.abc import IHost, INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.identity.identify import identify as stock_identify
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.peer.envelope import Envelope
from libp2p.peer.peerinfo import PeerInfo
from libp2p.utils import varint
from multiaddr import Multiaddr
from support.endpoint_helpers import wait_until
from support.wt_helpers import LISTEN_V4, FakeClock, packaged_host, read_to_end, transport_of

from py_libp2p_webtransport.apps.identify import IDENTIFY_PROTOCOL
from py_libp2p_webtransport.certs import CertManager
from py_libp2p_webtransport.multiaddr import is_webtransport_multiaddr, parse_webtransport_multiaddr

NAT_IP = "203.0.113.9"  # what NAT'd observers report (TEST-NET-3: never routed)
DNS_ADDR = "/dns4/node.example.com/udp/443/quic-v1/webtransport"


def wt_pairs(addrs: Sequence[Multiaddr]) -> dict[str, list[bytes]]:
    """Host part of each WebTransport address -> its certhashes."""
    out = {}
    for addr in addrs:
        if is_webtransport_multiaddr(addr):
            parsed = parse_webtransport_multiaddr(addr)
            out[parsed.host] = list(parsed.certhashes)
    return out


def record_addrs(envelope: Envelope | None) -> list[Multiaddr]:
    assert envelope is not None
    return list(envelope.record().addrs)


@asynccontextmanager
async def nat_observers(count: int, engine: str, observed: str) -> AsyncIterator[list[IHost]]:
    """Hosts on distinct loopback IPs (distinct observer groups for py-libp2p's
    ObservedAddrManager) whose identify reports ``observed``, as peers behind a NAT's outside
    would see a node that is itself behind NAT."""
    async with AsyncExitStack() as stack:
        hosts = []
        for i in range(count):
            listen = (f"/ip4/127.0.0.{i + 2}/udp/0/quic-v1/webtransport",)
            host = await stack.enter_async_context(packaged_host(engine, listen=listen))
            host.set_stream_handler(IDENTIFY_PROTOCOL, _identify_reporting(host, observed))
            hosts.append(host)
        yield hosts


def _identify_reporting(host: IHost, observed: str) -> Any:
    async def handler(stream: INetStream) -> None:
        message = stock_identify._mk_identify_protobuf(host, Multiaddr(observed))
        data = message.SerializeToString()
        await stream.write(varint.encode_uvarint(len(data)) + data)
        await stream.close()

    return handler


async def identify_listen_addrs(asker: IHost, server: IHost) -> list[Multiaddr]:
    stream = await asker.new_stream(server.get_id(), [IDENTIFY_PROTOCOL])
    identify = parse_identify_response(await read_to_end(stream))
    return [Multiaddr(a) for a in identify.listen_addrs]


@pytest.mark.parametrize("mode", ["announce", "factory_and_observed"])
async def test_every_address_carries_the_current_pair_over_three_rotations(
    engine: str, mode: str
) -> None:
    clock = FakeClock()
    options: dict[str, Any] = {}
    if mode == "announce":
        options["announce"] = [Multiaddr(DNS_ADDR)]
        hosts = {"node.example.com"}
    else:
        options["addrs_factory"] = lambda addrs: [*addrs, Multiaddr(DNS_ADDR)]
        hosts = {"127.0.0.1", NAT_IP, "node.example.com"}
    with trio.fail_after(90):
        async with packaged_host(engine, clock=clock, listen=(LISTEN_V4,), **options) as server:
            manager = transport_of(server).cert_manager
            (listen,) = server.get_transport_addrs()
            port = listen.value_for_protocol("udp")
            observed = f"/ip4/{NAT_IP}/udp/{port}/quic-v1/webtransport"
            async with nat_observers(4, engine, observed) as observers:
                for peer in observers:  # the server dials; its identify records what they see
                    await server.connect(PeerInfo(peer.get_id(), peer.get_transport_addrs()))
                if mode != "announce":
                    await wait_until(
                        lambda: NAT_IP in wt_pairs(server.get_addrs()),
                        "the observed address to be confirmed by four observers",
                    )
                seen_pairs: list[list[bytes]] = []
                for rotation in range(1, 4):
                    clock.now = manager.next_rotation + 1
                    advertised = server.get_addrs()  # noticing the new bucket is enough
                    pair = manager.advertised_certhashes()
                    assert all(pair != seen for seen in seen_pairs)
                    seen_pairs.append(pair)
                    assert server.webtransport_announcer.rotations == rotation  # type: ignore[attr-defined]
                    # The host's own list, the signed record and what identify tells a peer.
                    record = record_addrs(server.get_peerstore().get_local_record())
                    told = await identify_listen_addrs(observers[0], server)
                    for where, addrs in (("get_addrs", advertised), ("record", record)):
                        assert wt_pairs(addrs) == dict.fromkeys(hosts, pair), where
                    assert wt_pairs(told) == dict.fromkeys(hosts, pair), "identify"


def _clock_with_rotation_in(seconds: float, manager: CertManager) -> Any:
    """A wall clock (it moves) set so that ``manager``'s next rotation is ``seconds`` away."""
    offset = manager.next_rotation - time.time() - seconds
    return lambda: time.time() + offset


async def test_rotation_is_announced_and_the_old_address_still_dials(engine: str) -> None:
    kp = create_new_key_pair()
    clock = _clock_with_rotation_in(2.0, CertManager(kp.private_key))
    with trio.fail_after(60):
        async with (
            packaged_host(engine, key_pair=kp, clock=clock, listen=(LISTEN_V4,)) as server,
            packaged_host(engine, clock=clock, listen=(LISTEN_V4,)) as client,
        ):
            (before,) = server.get_addrs()
            old_pair = parse_webtransport_multiaddr(before).certhashes
            await client.connect(PeerInfo(server.get_id(), [before]))
            store = client.get_peerstore()
            await wait_until(
                lambda: store.get_peer_record(server.get_id()) is not None,
                "the client's identify of the server",
                timeout=15,
            )
            old_seq = store.get_peer_record(server.get_id()).record().seq  # type: ignore[union-attr]

            # Nobody asks: the listener's own rotation loop finds the new bucket and the host
            # pushes identify to the connected client.
            def client_learned_new_pair() -> bool:
                pairs = wt_pairs(store.addrs(server.get_id()))
                return pairs.get("127.0.0.1", list(old_pair)) != list(old_pair)

            await wait_until(client_learned_new_pair, "identify push after the rotation", 20)
            new_pair = transport_of(server).cert_manager.advertised_certhashes()
            assert new_pair[0] == old_pair[1]
            assert wt_pairs(store.addrs(server.get_id())) == {"127.0.0.1": new_pair}
            signed = store.get_peer_record(server.get_id())
            assert signed is not None and signed.record().seq > old_seq
            assert wt_pairs(signed.record().addrs) == {"127.0.0.1": new_pair}

            (after,) = server.get_addrs()
            # A peer that learned either address gets in (its clock checks the certificate's
            # validity: the same moment as the server's).
            for addr in (before, after):
                async with packaged_host(engine, clock=clock, listen=(LISTEN_V4,)) as fresh:
                    await fresh.connect(PeerInfo(server.get_id(), [addr]))
                    assert fresh.get_network().get_connections(server.get_id())


async def test_rotation_noticed_after_the_host_stopped_is_quiet(engine: str) -> None:
    """No peer to tell and no nursery to push from: the record is still re-issued, no error."""
    clock = FakeClock()
    announce = [Multiaddr(DNS_ADDR)]
    with trio.fail_after(30):
        async with packaged_host(engine, clock=clock, announce=announce) as server:
            manager = transport_of(server).cert_manager
    clock.now = manager.next_rotation + 1
    (addr,) = server.get_addrs()  # notices the rotation
    assert server.webtransport_announcer.rotations == 1  # type: ignore[attr-defined]
    pair = manager.advertised_certhashes()
    assert wt_pairs([addr]) == {"node.example.com": pair}
    assert wt_pairs(record_addrs(server.get_peerstore().get_local_record())) == {
        "node.example.com": pair
    }
