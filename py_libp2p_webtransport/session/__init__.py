"""Sans-IO WebTransport over HTTP/3 (our own layer: SETTINGS, QPACK, CONNECT, capsules, streams).

Never imports trio or libp2p and never reads a clock: time comes in as ``now``.
"""

from __future__ import annotations

from .config import H3Config
from .connection import WebTransportH3
from .events import (
    ConnectionClosed,
    SessionClosed,
    SessionDraining,
    SessionEstablished,
    SessionEvent,
    SessionRejected,
    SessionRequested,
    StopSendingReceived,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
    StreamStalled,
)
from .settings import PROTOCOL_DRAFT02, PROTOCOL_H3

__all__ = [
    "PROTOCOL_DRAFT02",
    "PROTOCOL_H3",
    "ConnectionClosed",
    "H3Config",
    "SessionClosed",
    "SessionDraining",
    "SessionEstablished",
    "SessionEvent",
    "SessionRejected",
    "SessionRequested",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamOpened",
    "StreamReset",
    "StreamStalled",
    "WebTransportH3",
]
