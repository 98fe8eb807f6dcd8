"""The sans-IO error tree: every error the layers below the libp2p glue raise.

Imports nothing but ``constants``, so the twins, the session layer, the engines and the endpoint
helpers load no libp2p and no trio (``tests/test_layering.py`` checks it). Users import these
classes from ``errors``, which re-exports them beside the libp2p-facing ones. Both twins of each
accelerated module (``_*_c`` and ``_*_py``) raise these exact classes.
"""

from __future__ import annotations

from .constants import H3ErrorCode


class WebTransportError(Exception):
    """Root of every error raised by py-libp2p-webtransport."""


# --- wire / protocol errors -------------------------------------------------------------------


class ProtocolError(WebTransportError):
    """A protocol rule was broken; ``error_code`` is the HTTP/3 code to close or reset with."""

    error_code: int = H3ErrorCode.H3_GENERAL_PROTOCOL_ERROR

    def __init__(self, message: str = "", error_code: int | None = None) -> None:
        super().__init__(message)
        if error_code is not None:
            self.error_code = error_code

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.error_code))


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids (e.g. encode an out-of-range varint)."""

    error_code = H3ErrorCode.H3_INTERNAL_ERROR


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol."""


class FramingError(RemoteProtocolError):
    """Malformed bytes on the wire: bad varint, frame, capsule or stream header."""

    error_code = H3ErrorCode.H3_FRAME_ERROR


class StreamIdError(RemoteProtocolError):
    """A stream header names a session id that cannot be one (not a client-initiated bidi id)."""

    error_code = H3ErrorCode.H3_ID_ERROR


class SettingsError(RemoteProtocolError):
    """Invalid or missing HTTP/3 SETTINGS."""

    error_code = H3ErrorCode.H3_SETTINGS_ERROR


class MessageError(RemoteProtocolError):
    """Malformed HTTP message (header block) on a request stream."""

    error_code = H3ErrorCode.H3_MESSAGE_ERROR


class NeedMoreData(WebTransportError):
    """Internal control flow: a parser needs more bytes before it can return an item.

    Never escapes the package; parsers of buffers raise it, incremental parsers catch it.
    """


class FlowControlError(WebTransportError):
    """Credit arithmetic was violated (e.g. consuming more than was received)."""


class BufferLimitExceeded(WebTransportError):
    """A bounded buffer would grow past its configured limit."""


# --- engines -----------------------------------------------------------------------------------


class EngineError(WebTransportError):
    """The QUIC engine failed or is not supported (version, missing private API)."""


class StreamLimitReached(EngineError):
    """A new stream would exceed the peer's MAX_STREAMS; retry once it grants more credit."""


# --- addresses and listening -------------------------------------------------------------------


class AddressError(WebTransportError, ValueError):
    """A multiaddr is not a well-formed WebTransport address."""


class InvalidCerthash(AddressError):
    """A certhash is not valid multibase, or not a SHA-256 multihash of 32 bytes."""


class ListenError(WebTransportError):
    """Listening failed (bad address, address carrying a certhash, bind error)."""


# --- endpoint ------------------------------------------------------------------------------------


class MalformedPacket(WebTransportError):
    """A UDP datagram is not a QUIC packet we can route (truncated or impossible header)."""


class InvalidRetryToken(WebTransportError):
    """An Initial carried an address-validation token we did not issue, or not for this use.

    ``reason`` is one of ``"forged"`` (not ours, or altered), ``"expired"``, ``"address"``
    (issued to another client address) and ``"connection_id"`` (sent to another destination
    connection id than the Retry told the client to use).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
