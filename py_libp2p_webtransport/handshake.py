"""Noise over a stream: the trio drivers of the sans-IO ``NoiseHandshake`` (noise.py).

``handshake_outbound`` and ``handshake_inbound`` drive it over any object with
``async read(n)`` / ``async write(data)`` under a timeout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

import trio
from libp2p.crypto.keys import PrivateKey
from libp2p.peer.id import ID

from .errors import DialError, DialTimeout, HandshakeError
from .noise import DEFAULT_HANDSHAKE_TIMEOUT, NoiseHandshake, NoiseResult

__all__ = [
    "HandshakeStream",
    "drive_handshake",
    "handshake_inbound",
    "handshake_outbound",
]


class HandshakeStream(Protocol):
    """The stream the handshake runs on (an ``IMuxedStream`` fits)."""

    async def read(self, n: int) -> bytes:
        """Read up to ``n`` bytes; ``b""`` at end of stream."""
        ...

    async def write(self, data: bytes) -> None:
        """Write all of ``data``."""
        ...


async def drive_handshake(
    stream: HandshakeStream,
    handshake: NoiseHandshake,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> NoiseResult:
    """Run ``handshake`` over ``stream``, never reading past its last message.

    A handshake that takes longer than ``timeout`` seconds (``None``: no limit) raises
    ``DialTimeout`` on the initiator and ``HandshakeError`` on the responder. A failing stream
    (reset, closed, broken) becomes a ``HandshakeError`` whose ``__cause__`` is the stream's error,
    so a dialer only ever sees ``DialError`` subclasses.
    """
    try:
        with trio.fail_after(math.inf if timeout is None else timeout):
            while True:
                out = handshake.data_to_send()
                if out:
                    await stream.write(out)
                if handshake.is_complete:
                    return handshake.result
                try:
                    data = await stream.read(handshake.bytes_needed)
                except EOFError:  # MuxedStreamEOF / StreamEOF: the peer sent FIN early
                    data = b""
                if not data:
                    raise HandshakeError("stream closed during the Noise handshake")
                handshake.receive_data(data)
    except trio.TooSlowError as exc:
        error = DialTimeout if handshake.is_initiator else HandshakeError
        raise error(f"the Noise handshake did not finish within {timeout} s") from exc
    except DialError:
        raise
    except Exception as exc:  # the stream failed under us
        raise HandshakeError(f"the handshake stream failed: {exc!r}") from exc


async def handshake_outbound(
    stream: HandshakeStream,
    private_key: PrivateKey,
    *,
    dialed_certhashes: Iterable[bytes] = (),
    expected_peer: ID | None = None,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> NoiseResult:
    """Client side: authenticate the server and check its certhash list; returns the server."""
    handshake = NoiseHandshake.initiator(
        private_key, dialed_certhashes=dialed_certhashes, expected_peer=expected_peer
    )
    return await drive_handshake(stream, handshake, timeout)


async def handshake_inbound(
    stream: HandshakeStream,
    private_key: PrivateKey,
    *,
    certhashes: Iterable[bytes] = (),
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> NoiseResult:
    """Server side: list ``certhashes`` in message 2; returns the authenticated client."""
    handshake = NoiseHandshake.responder(private_key, certhashes=certhashes)
    return await drive_handshake(stream, handshake, timeout)
