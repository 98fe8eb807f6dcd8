"""Stateless reset tokens (RFC 9000 §10.3) derived from a secret, and recognising a reset.

A token is a pure function of (secret, connection id), so an endpoint that lost every
connection (a restarted node with the same host key, hence the same secret) can still answer a
packet for a connection id it issued with that id's token. The engines advertise these tokens
(the server's transport parameter, NEW_CONNECTION_ID frames); the endpoint's
``endpoint/stateless_reset.py`` sends them. ``RESET_REASON`` is the reason an engine reports
when the peer's reset ended a connection. Sans-IO, standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

__all__ = [
    "MIN_RESET_SIZE",
    "RESET_REASON",
    "TOKEN_LENGTH",
    "derive_reset_secret",
    "is_stateless_reset",
    "reset_token",
]

TOKEN_LENGTH = 16
#: The smallest stateless reset: a first byte, 38 unpredictable bits and the token (§10.3).
MIN_RESET_SIZE = 21
#: ``ConnectionTerminated.reason`` of a connection the peer's stateless reset ended.
RESET_REASON = "stateless reset"
_LABEL = b"py-libp2p-webtransport stateless reset secret v1"


def derive_reset_secret(key_material: bytes) -> bytes:
    """The reset secret of a host: HMAC-SHA256 of its private key bytes under a fixed label
    (HKDF-Extract with the label as salt). The same key gives the same secret, every run."""
    if not key_material:
        raise ValueError("stateless reset: empty key material")
    return hmac.new(_LABEL, key_material, hashlib.sha256).digest()


def reset_token(secret: bytes, connection_id: bytes) -> bytes:
    """The 16-byte token of ``connection_id``: HMAC-SHA256(secret, id), truncated."""
    return hmac.new(secret, connection_id, hashlib.sha256).digest()[:TOKEN_LENGTH]


def is_stateless_reset(datagram: bytes, tokens: Iterable[bytes]) -> bool:
    """True if ``datagram`` ends with one of the peer's ``tokens`` (§10.3.1): a short-header
    datagram of at least ``MIN_RESET_SIZE`` bytes. Compared in constant time per token."""
    if len(datagram) < MIN_RESET_SIZE or datagram[0] & 0x80:
        return False
    tail = datagram[-TOKEN_LENGTH:]
    found = False
    for token in tokens:
        if token and hmac.compare_digest(tail, token):
            found = True
    return found
