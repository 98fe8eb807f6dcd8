"""``serve --max-connections``: a node keeps more connections than py-libp2p's defaults allow
(256 established inbound in its resource manager, pruning above 300 in its connection manager)."""

from __future__ import annotations

import argparse

import pytest
import trio
from support.wt_helpers import LISTEN_V4, client_endpoint, dial_many, packaged_host, wt_addrs

from py_libp2p_webtransport.cli.deploy import host_options_from_args
from py_libp2p_webtransport.cli.main import build_parser

#: More than py-libp2p's default of 256 established inbound connections.
PEERS = 280


@pytest.mark.slow
@pytest.mark.parametrize("limit", [None, 400], ids=["py-libp2p-default", "max-connections-400"])
async def test_max_connections_keeps_more_than_py_libp2ps_default(limit: int | None) -> None:
    options = host_options_from_args(argparse.Namespace(max_connections=limit))
    async with (
        packaged_host("qh3", listen=(LISTEN_V4,), **options) as host,
        client_endpoint("qh3") as endpoint_for,
    ):
        (addr,) = wt_addrs(host)
        network = host.get_network()
        with trio.fail_after(120):
            conns = await dial_many(endpoint_for, "qh3", addr, PEERS)
            # py-libp2p refuses connections over its limits right after Noise (we see them
            # close): wait until every connection is either held by the node or closed.
            while sum(c.is_closed for c in conns) + len(network.get_connections()) != PEERS:
                await trio.sleep(0.05)
        held = len(network.get_connections())
        if limit is None:
            assert held < PEERS  # the default cannot hold them (250 inbound in 0.8.1)
        else:
            assert held == PEERS and not any(c.is_closed for c in conns)


def test_max_connections_sets_both_py_libp2p_limits() -> None:
    options = host_options_from_args(argparse.Namespace(max_connections=5000))
    config, manager = options["connection_config"], options["resource_manager"]
    assert config.max_connections == config.high_watermark == 5000
    assert config.max_connections - config.min_connections >= 4500  # inbound slots
    assert manager.connection_limits.max_established_inbound == 5000
    assert manager.limits.max_connections >= 5000
    assert host_options_from_args(argparse.Namespace(max_connections=None)) == {}


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_bad_max_connections_is_a_clear_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--max-connections", value])
    assert exit_info.value.code == 2
    assert "--max-connections" in capsys.readouterr().err
