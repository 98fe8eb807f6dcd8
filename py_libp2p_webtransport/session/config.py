"""Configuration of the HTTP/3 WebTransport session layer (limits, deadlines, SETTINGS values)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ..constants import WELL_KNOWN_PATH


def random_grease_setting_id() -> int:
    """A reserved ``0x1f * N + 0x21`` identifier (RFC 9114 §7.2.4.1) that peers must ignore."""
    return 0x1F * secrets.randbelow(1 << 16) + 0x21


@dataclass(frozen=True)
class H3Config:
    """Knobs of ``WebTransportH3``; the defaults are what the libp2p transport uses.

    Attributes
    ----------
    path:
        Server: the only path that gets a 200 (others get 404).
    required_query:
        Server: the query the path must carry exactly (else 400); ``None`` accepts any query.
    wt_max_sessions:
        Value of SETTINGS_WT_MAX_SESSIONS (0x14e9cd29, Safari 26.4+ needs >= 1). When > 1 the
        draft-13 initial limits below are sent too, as Safari requires them then.
    pending_stream_timeout:
        Seconds a stream whose session is not (yet) established stays buffered before it is
        rejected with WT_BUFFERED_STREAM_REJECTED (webtransport-go ReorderingTimeout: 5 s).
    max_pending_streams, max_pending_bytes:
        Bounds of that buffer (count of streams, total bytes held) per connection.
    settings_timeout:
        Seconds after ``initialize`` within which the peer's SETTINGS must arrive, else the
        connection is closed with H3_MISSING_SETTINGS.
    max_frame_payload:
        Largest non-DATA frame (HEADERS, SETTINGS) or capsule accepted.
    grease_setting_id:
        Identifier of the GREASE setting we send (``None``: none).
    stall_timeout:
        Seconds reception may stay paused by unread data (qh3's per-connection receive
        budget) with nothing consumed before the stream holding the most unread bytes is
        aborted with RECEIVE_STALL_ERROR (``stall.StallWatch``).
    """

    path: str = WELL_KNOWN_PATH
    required_query: str | None = "type=noise"
    wt_max_sessions: int = 1
    wt_initial_max_data: int = 1 << 60
    wt_initial_max_streams_uni: int = 1 << 60
    wt_initial_max_streams_bidi: int = 1 << 60
    pending_stream_timeout: float = 5.0
    max_pending_streams: int = 64
    max_pending_bytes: int = 1 << 20
    settings_timeout: float = 10.0
    max_frame_payload: int = 65536
    grease_setting_id: int | None = field(default_factory=random_grease_setting_id)
    stall_timeout: float = 30.0
