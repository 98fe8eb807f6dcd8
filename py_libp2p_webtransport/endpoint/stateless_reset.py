"""Answering packets for connections we do not know with a stateless reset (RFC 9000 §10.3).

After a restart a node has no connection state, but its peers keep sending to the connection
ids it issued before. With the same host key it derives the same secret, so it can answer such a
short-header datagram with the reset token of its destination connection id
(``engine/reset_token.py``), and the peer closes the connection at once instead of waiting for
its idle timeout.

``StatelessResetter.respond(datagram, now)`` returns the reset to send, or None. The rules:

* only a short-header datagram is answered (its destination id is ``HOST_CID_LENGTH`` bytes);
  a long header for an unknown id is no connection of ours to reset;
* the reset is always smaller than the datagram that triggered it, and at least
  ``MIN_RESET_SIZE`` (21) bytes, so a trigger of 21 bytes or less gets nothing: two endpoints
  resetting each other's resets cannot loop (§10.3.3);
* a reset (ours reflected, or a peer's) for an id we do not know looks like any short header;
  the size rule alone ends such an exchange: each answer is smaller, none under 22 bytes;
* a trigger of up to 43 bytes gets a reset one byte shorter; a larger one a reset of random
  length from 42 bytes to the trigger's length less one (at most ``MAX_RESET_SIZE``), so its
  size tells little (§10.3);
* it looks like a short-header packet: form bit 0, fixed bit 1, every other bit unpredictable;
* resets are rate limited (``RESETS_PER_SECOND`` for the endpoint, with as large a burst), so a
  flood of junk costs one HMAC per datagram and earns few answers.

Sans-IO: no socket, no clock (``now`` is the caller's), randomness from ``os.urandom``.
"""

from __future__ import annotations

import os
import secrets

from ..engine.reset_token import MIN_RESET_SIZE, TOKEN_LENGTH, reset_token
from .admission import HOST_CID_LENGTH, InitialRateLimiter

__all__ = ["MAX_RESET_SIZE", "RESETS_PER_SECOND", "StatelessResetter"]

RESETS_PER_SECOND = 100.0
MAX_RESET_SIZE = 64  # a datagram of a typical short packet's size; never the trigger's or more
_SIZE_FLOOR = 42  # §10.3: up to this many bytes the reset is one byte shorter than the trigger
_GLOBAL = "all"  # the one bucket of the rate limiter


class StatelessResetter:
    """Builds the stateless resets of one endpoint from its secret (see the module doc)."""

    def __init__(self, secret: bytes, *, rate: float = RESETS_PER_SECOND) -> None:
        if len(secret) < 16:
            raise ValueError("stateless reset secret must be at least 16 bytes")
        self._secret = secret
        self._limiter = InitialRateLimiter(rate)

    def token(self, connection_id: bytes) -> bytes:
        """The token our engines advertise with ``connection_id``."""
        return reset_token(self._secret, connection_id)

    def respond(self, datagram: bytes, now: float) -> bytes | None:
        """The reset answering ``datagram`` (for an unknown connection id), or None."""
        size = len(datagram)
        if size <= MIN_RESET_SIZE or datagram[0] & 0x80 or size < 1 + HOST_CID_LENGTH:
            return None
        if not self._limiter.allow(_GLOBAL, now):
            return None
        return build_reset(self.token(datagram[1 : 1 + HOST_CID_LENGTH]), reset_size(size))


def reset_size(trigger_size: int) -> int:
    """How long the reset answering a ``trigger_size``-byte datagram is (see the module doc)."""
    largest = min(trigger_size - 1, MAX_RESET_SIZE)
    if largest <= _SIZE_FLOOR:
        return largest
    return _SIZE_FLOOR + secrets.randbelow(largest - _SIZE_FLOOR + 1)


def build_reset(token: bytes, size: int) -> bytes:
    """A stateless reset of ``size`` bytes ending with ``token``: 0b01 then unpredictable bits."""
    if size < MIN_RESET_SIZE:
        raise ValueError(f"a stateless reset has at least {MIN_RESET_SIZE} bytes, not {size}")
    unpredictable = os.urandom(size - TOKEN_LENGTH)
    return bytes([0x40 | unpredictable[0] & 0x3F]) + unpredictable[1:] + token
