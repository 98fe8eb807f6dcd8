"""QUIC Retry through ``new_host``: with ``retry="always"`` every dial goes through a Retry and
still pings and echoes; the configuration is checked."""

from __future__ import annotations

import os

import pytest
import trio
from libp2p.host.ping import PingService
from support.wt_helpers import LISTEN_V4, LISTEN_V6, peer_info, transport_of, wt_host
from test_host_e2e import echo_roundtrip

from py_libp2p_webtransport.config import WebTransportConfig


def _server_endpoint_stats(host):  # type: ignore[no-untyped-def]
    (listener,) = transport_of(host)._listeners
    return listener._endpoint.stats


@pytest.mark.parametrize("listen", [LISTEN_V4, LISTEN_V6], ids=["ipv4", "ipv6"])
async def test_dial_through_retry_pings_and_echoes(engine: str, listen: str) -> None:
    with trio.fail_after(30):
        async with (
            wt_host(engine, listen=[listen], retry="always") as server,
            wt_host(engine, listen=[listen]) as client,
        ):
            await client.connect(peer_info(server))
            stats = _server_endpoint_stats(server)
            # One Retry per datagram of the client's first flight (qh3's may span two).
            assert 1 <= stats.retries_sent <= 2
            assert stats.connections_accepted == 1
            assert stats.dropped_invalid_token == 0
            rtts = await PingService(client).ping(server.get_id(), ping_amt=3)
            assert len(rtts) == 3
            payload = os.urandom(256 * 1024)
            assert await echo_roundtrip(client, server.get_id(), payload) == payload
            # A second dial (a new QUIC connection) is validated again: no state was kept.
            retries = stats.retries_sent
            await client.disconnect(server.get_id())
            await client.connect(peer_info(server))
            assert await echo_roundtrip(client, server.get_id(), b"again") == b"again"
            assert stats.retries_sent > retries and stats.connections_accepted == 2


async def test_default_under_load_sends_no_retry_when_idle(engine: str) -> None:
    assert WebTransportConfig().retry == "under_load"
    with trio.fail_after(30):
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(peer_info(server))
            assert await echo_roundtrip(client, server.get_id(), b"x") == b"x"
            stats = _server_endpoint_stats(server)
            assert stats.retries_sent == 0 and stats.connections_accepted == 1
            (listener,) = transport_of(server)._listeners
            validator = listener._endpoint.address_validator
            assert validator is not None and validator.mode == "under_load"
            assert validator.threshold == WebTransportConfig().max_pending_handshakes // 2


@pytest.mark.parametrize(
    "kwargs", [{"retry": "sometimes"}, {"retry": True}, {"retry_threshold": -1}]
)
def test_bad_retry_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WebTransportConfig(**kwargs)  # type: ignore[arg-type]


def test_retry_off_and_explicit_threshold() -> None:
    assert WebTransportConfig(retry="off").retry == "off"
    assert WebTransportConfig(retry_threshold=0).retry_threshold == 0
