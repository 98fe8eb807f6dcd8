"""HTTP/3 SETTINGS: what each role sends, and what a client requires from a server.

Sources: requirements checklist §D item 19 (server), §E items 26-28 (client); FACTS.md for
Chromium. We never send 0xc671706a (draft-07 WT_MAX_SESSIONS): it makes Chromium pick draft-07,
which is behind a flag.
"""

from __future__ import annotations

from .._errors import SettingsError
from ..constants import Setting
from .config import H3Config

# The two :protocol tokens we accept and send.
PROTOCOL_DRAFT02 = "webtransport"
PROTOCOL_H3 = "webtransport-h3"
ACCEPTED_PROTOCOLS = frozenset({PROTOCOL_DRAFT02, PROTOCOL_H3})

# HTTP/2 setting identifiers that RFC 9114 §7.2.4.1 forbids in HTTP/3.
_HTTP2_ONLY = frozenset({0x2, 0x3, 0x4, 0x5})
# Settings whose value is a boolean flag; anything but 0/1 is an error (RFC 9220, RFC 9297).
_BOOLEAN = frozenset({Setting.ENABLE_CONNECT_PROTOCOL, Setting.H3_DATAGRAM})


def _qpack() -> dict[int, int]:
    # QPACK dynamic table capacity 0 and no blocked streams: header blocks use only the static
    # table and literals, so no stream can ever block on the encoder stream.
    settings = {Setting.QPACK_MAX_TABLE_CAPACITY: 0, Setting.QPACK_BLOCKED_STREAMS: 0}
    return {int(k): v for k, v in settings.items()}


def _with_grease(settings: dict[int, int], config: H3Config) -> dict[int, int]:
    if config.grease_setting_id is not None:
        # RFC 9114 §7.2.4.1: reserved ids exercise the peer's "ignore unknown" rule.
        settings[config.grease_setting_id] = 0
    return settings


def server_settings(config: H3Config) -> dict[int, int]:
    """The SETTINGS a server sends, in wire order (every WebTransport draft peers may speak)."""
    settings = _qpack()
    settings[Setting.ENABLE_CONNECT_PROTOCOL] = 1
    settings[Setting.H3_DATAGRAM] = 1
    settings[Setting.ENABLE_WEBTRANSPORT_DRAFT02] = 1  # Chromium, Firefox, go-libp2p <= 0.48
    settings[Setting.WT_ENABLED] = 1  # go-libp2p >= 0.49 (draft-15/16)
    settings[Setting.WT_MAX_SESSIONS] = config.wt_max_sessions  # Safari 26.4+ (draft-13/14)
    if config.wt_max_sessions > 1:
        # Safari refuses MAX_SESSIONS > 1 without the initial limits (webtransport-go #355).
        settings[Setting.WT_INITIAL_MAX_DATA] = config.wt_initial_max_data
        settings[Setting.WT_INITIAL_MAX_STREAMS_UNI] = config.wt_initial_max_streams_uni
        settings[Setting.WT_INITIAL_MAX_STREAMS_BIDI] = config.wt_initial_max_streams_bidi
    return _with_grease({int(k): v for k, v in settings.items()}, config)


def client_settings(config: H3Config) -> dict[int, int]:
    """The SETTINGS a client sends: datagrams plus both WT-enable codepoints (draft-02, -15)."""
    settings = _qpack()
    settings[Setting.H3_DATAGRAM] = 1
    settings[Setting.ENABLE_WEBTRANSPORT_DRAFT02] = 1
    settings[Setting.WT_ENABLED] = 1
    return _with_grease({int(k): v for k, v in settings.items()}, config)


def validate_peer_settings(settings: dict[int, int]) -> None:
    """Reject SETTINGS that RFC 9114 / RFC 9220 / RFC 9297 forbid (raises ``SettingsError``)."""
    for key, value in settings.items():
        if key in _HTTP2_ONLY:
            raise SettingsError(f"HTTP/2 setting 0x{key:x} is not allowed in HTTP/3")
        if key in _BOOLEAN and value not in (0, 1):
            raise SettingsError(f"setting 0x{key:x} must be 0 or 1, got {value}")


def choose_client_protocol(server: dict[int, int]) -> str | None:
    """Client: the ``:protocol`` token to use with a server, or None if it offers no WebTransport.

    Requires ENABLE_CONNECT_PROTOCOL and H3_DATAGRAM, plus either WT-enable codepoint. Prefers
    draft-02's ``webtransport`` when offered: every go-libp2p server and Chromium-style peer
    accepts it, while ``webtransport-h3`` only works with draft-15+ servers.
    """
    if server.get(Setting.ENABLE_CONNECT_PROTOCOL) != 1 or server.get(Setting.H3_DATAGRAM) != 1:
        return None
    if server.get(Setting.ENABLE_WEBTRANSPORT_DRAFT02) == 1:
        return PROTOCOL_DRAFT02
    if server.get(Setting.WT_ENABLED, 0) != 0:
        return PROTOCOL_H3
    return None
