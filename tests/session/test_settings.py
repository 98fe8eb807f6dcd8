"""SETTINGS each role sends, and how a client judges a server's (checklist §D 19, §E 26-28)."""

from __future__ import annotations

import pytest

from py_libp2p_webtransport.constants import H3ErrorCode
from py_libp2p_webtransport.errors import SettingsError
from py_libp2p_webtransport.session import H3Config
from py_libp2p_webtransport.session.settings import (
    choose_client_protocol,
    client_settings,
    server_settings,
    validate_peer_settings,
)

NO_GREASE = H3Config(grease_setting_id=None)


def test_server_settings_default() -> None:
    assert server_settings(NO_GREASE) == {
        0x01: 0,  # QPACK_MAX_TABLE_CAPACITY
        0x07: 0,  # QPACK_BLOCKED_STREAMS
        0x08: 1,  # ENABLE_CONNECT_PROTOCOL
        0x33: 1,  # H3_DATAGRAM
        0x2B603742: 1,  # draft-02 ENABLE_WEBTRANSPORT
        0x2C7CF000: 1,  # draft-15 WT_ENABLED
        0x14E9CD29: 1,  # WT_MAX_SESSIONS
    }


def test_server_settings_more_sessions_add_initial_limits() -> None:
    cfg = H3Config(
        grease_setting_id=None,
        wt_max_sessions=4,
        wt_initial_max_data=1000,
        wt_initial_max_streams_uni=10,
        wt_initial_max_streams_bidi=20,
    )
    settings = server_settings(cfg)
    assert settings[0x14E9CD29] == 4
    assert (settings[0x2B61], settings[0x2B64], settings[0x2B65]) == (1000, 10, 20)


def test_server_never_sends_draft07_max_sessions() -> None:
    for cfg in (NO_GREASE, H3Config(wt_max_sessions=3)):
        assert 0xC671706A not in server_settings(cfg)


def test_client_settings() -> None:
    assert client_settings(NO_GREASE) == {0x01: 0, 0x07: 0, 0x33: 1, 0x2B603742: 1, 0x2C7CF000: 1}


def test_grease_setting_is_reserved_and_sent() -> None:
    cfg = H3Config()
    assert cfg.grease_setting_id is not None
    assert (cfg.grease_setting_id - 0x21) % 0x1F == 0
    assert cfg.grease_setting_id in server_settings(cfg)
    assert cfg.grease_setting_id in client_settings(cfg)


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ({0x08: 1, 0x33: 1, 0x2B603742: 1, 0x2C7CF000: 1}, "webtransport"),
        ({0x08: 1, 0x33: 1, 0x2B603742: 1}, "webtransport"),  # go-libp2p <= 0.48
        ({0x08: 1, 0x33: 1, 0x2C7CF000: 1}, "webtransport-h3"),  # draft-15/16 only
        ({0x33: 1, 0x2B603742: 1, 0x2C7CF000: 1}, None),  # no extended CONNECT
        ({0x08: 1, 0x2B603742: 1}, None),  # no H3 datagrams
        ({0x08: 1, 0x33: 1}, None),  # no WebTransport at all
        ({0x08: 1, 0x33: 1, 0x14E9CD29: 5, 0xC671706A: 5}, None),  # newer drafts' limits only
        ({0x08: 1, 0x33: 1, 0x2B603742: 0, 0x2C7CF000: 0}, None),
    ],
)
def test_choose_client_protocol(server: dict[int, int], expected: str | None) -> None:
    assert choose_client_protocol(server) == expected


@pytest.mark.parametrize("bad", [{0x2: 1}, {0x5: 100}, {0x08: 2}, {0x33: 7}])
def test_validate_peer_settings_rejects(bad: dict[int, int]) -> None:
    with pytest.raises(SettingsError) as info:
        validate_peer_settings(bad)
    assert info.value.error_code == H3ErrorCode.H3_SETTINGS_ERROR


def test_validate_peer_settings_accepts_unknown_and_grease() -> None:
    validate_peer_settings({0x21: 5, 0xFFD277: 1, 0x2B603742: 1, 0x1F * 7 + 0x21: 3})
