"""Identify over WebTransport reports the peer's real UDP WebTransport address (identify.py)."""

from __future__ import annotations

import socket
from typing import Any

import trio
from libp2p.identity.identify import identify as stock_identify
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.network.stream.exceptions import StreamEOF
from multiaddr import Multiaddr
from support.wt_helpers import peer_info, transport_of, wt_host

from py_libp2p_webtransport.apps.identify import (
    IDENTIFY_PROTOCOL,
    install_identify,
    observed_address,
)
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL


async def read_all(stream: Any) -> bytes:
    out = bytearray()
    try:
        while chunk := await stream.read(1 << 16):
            out += chunk
    except StreamEOF:
        pass
    return bytes(out)


async def test_observed_address_is_the_dialers_udp_webtransport_address(engine: str) -> None:
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            install_identify(server)
            await client.connect(peer_info(server))
            stream = await client.new_stream(server.get_id(), [IDENTIFY_PROTOCOL])
            identify = parse_identify_response(await read_all(stream))
            # The client listens, so it dialed from its listening socket (issue 13: one port),
            # looked up on its side (not derived from the server).
            client_transport = transport_of(client)
            assert socket.AF_INET not in client_transport._client_endpoints
            listening = client_transport.endpoints()
            assert len(listening) == 1
            client_port = listening[0].local_address[1]
            expected = f"/ip4/127.0.0.1/udp/{client_port}/quic-v1/webtransport"
            assert str(Multiaddr(identify.observed_addr)) == expected
            # Everything else is py-libp2p's own message.
            assert identify.public_key == server.get_public_key().serialize()
            assert str(ECHO_PROTOCOL) in identify.protocols
            listen = [str(Multiaddr(a)) for a in identify.listen_addrs]
            assert any("/webtransport/certhash/" in a for a in listen)


def test_streams_of_other_transports_go_to_the_stock_handler() -> None:
    class OtherConn:
        pass

    class OtherStream:
        muxed_conn = OtherConn()

    assert observed_address(OtherStream()) is None  # type: ignore[arg-type]


def test_private_api_mk_identify_protobuf() -> None:
    """Guard: identify.py builds the message with py-libp2p's private ``_mk_identify_protobuf``
    (tested on libp2p 0.8.1). Fails if the name or its (host, observed) signature changes."""
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair

    host = new_host(key_pair=create_new_key_pair())
    observed = Multiaddr("/ip4/127.0.0.1/udp/4242/quic-v1/webtransport")
    message = stock_identify._mk_identify_protobuf(host, observed)
    assert Multiaddr(message.observed_addr) == observed
    assert message.public_key == host.get_public_key().serialize()
