"""``WebTransportConfig`` validation and how the transport turns it into an engine config."""

from __future__ import annotations

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.transport import WebTransportTransport

MiB = 1024 * 1024


@pytest.mark.parametrize("value", [0, -1])
def test_recv_budget_must_be_positive(value: int) -> None:
    with pytest.raises(ValueError, match="recv_budget"):
        WebTransportConfig(recv_budget=value)


@pytest.mark.parametrize(
    ("settings", "budget"),
    [
        ({}, 4 * MiB),  # the default, under the default 16 MiB window
        ({"recv_budget": 2 * MiB}, 2 * MiB),
        ({"recv_budget": 8 * MiB, "max_data": 1 * MiB}, 1 * MiB),  # never above the window
    ],
)
def test_engine_budget_is_recv_budget_capped_by_the_window(
    settings: dict[str, int], budget: int
) -> None:
    transport = WebTransportTransport(
        create_new_key_pair().private_key, WebTransportConfig(**settings)
    )
    config = transport.engine_config(is_client=True)
    assert config.recv_budget == budget
    assert config.max_data == transport.config.max_data


@pytest.mark.parametrize("value", [0, -1.0])
def test_keepalive_must_be_positive_or_none(value: float) -> None:
    with pytest.raises(ValueError, match="keepalive_interval"):
        WebTransportConfig(keepalive_interval=value)


def test_keepalive_reaches_the_engine_config() -> None:
    assert WebTransportConfig().engine_config(is_client=True).keepalive_interval == 15.0
    off = WebTransportConfig(keepalive_interval=None).engine_config(is_client=False)
    assert off.keepalive_interval is None
