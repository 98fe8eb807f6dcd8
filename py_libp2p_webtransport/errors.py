"""Every exception of the package.

Both twins of each accelerated module (``_*_c`` and ``_*_py``) raise these exact classes, so
``except`` clauses work whichever twin is loaded.
"""

from __future__ import annotations

from libp2p.exceptions import BaseLibp2pError
from libp2p.io.exceptions import IOException
from libp2p.stream_muxer.exceptions import MuxedStreamEOF
from libp2p.transport.exceptions import OpenConnectionError

from .constants import H3ErrorCode


class WebTransportError(BaseLibp2pError):
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


# --- stream and session errors ----------------------------------------------------------------


class StreamReset(WebTransportError):
    """A stream was reset; ``error_code`` is the WebTransport application code (unmapped)."""

    def __init__(self, stream_id: int, error_code: int, remote: bool = True) -> None:
        who = "peer" if remote else "local side"
        super().__init__(f"stream {stream_id} reset by {who} with code {error_code}")
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote


class StreamEnded(MuxedStreamEOF, IOException, EOFError):
    """A read found the peer's clean end of stream (FIN) and nothing left to read.

    py-libp2p's convention (yamux, mplex, its QUIC): ``NetStream`` turns it into ``StreamEOF``,
    and ``read_exactly``/multiselect, which catch ``IOException``, stop at once.
    """


class SessionClosed(WebTransportError):
    """The WebTransport session (and so the libp2p connection) is closed."""

    def __init__(self, error_code: int = 0, message: str = "", remote: bool = True) -> None:
        who = "peer" if remote else "local side"
        super().__init__(f"session closed by {who} with code {error_code}: {message!r}")
        self.error_code = error_code
        self.message = message
        self.remote = remote


class EngineError(WebTransportError):
    """The QUIC engine failed or is not supported (version, missing private API)."""


class StreamLimitReached(EngineError):
    """A new stream would exceed the peer's MAX_STREAMS; retry once it grants more credit."""


# --- dial / listen errors (OpenConnectionError so py-libp2p's swarm handles them) ---------------


class DialError(OpenConnectionError, WebTransportError):
    """A dial failed; subclasses say why."""


class MissingCerthash(DialError):
    """The multiaddr has no /certhash component; a WebTransport dial needs at least one."""


class CerthashMismatch(DialError):
    """The server's certificate or its Noise certhash list does not match the dialed certhashes."""


class PeerIdMismatch(DialError):
    """The Noise handshake authenticated a different peer than the /p2p/ component names."""


class SessionRejected(DialError):
    """The server answered the extended CONNECT with a non-2xx status."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or f"WebTransport CONNECT rejected with HTTP status {status}")
        self.status = status


class DialTimeout(DialError):
    """No QUIC handshake, CONNECT answer or Noise handshake within the dial timeout."""


class Unreachable(DialError):
    """The remote address could not be reached (socket error, ICMP, refused)."""


class HandshakeError(DialError):
    """The Noise handshake failed (bad message, bad signature, timeout on the server side)."""


class InvalidCertificate(DialError):
    """The server's certificate breaks the WebTransport rules (key, validity, not valid now)."""


# --- addresses ----------------------------------------------------------------------------------


class AddressError(WebTransportError, ValueError):
    """A multiaddr is not a well-formed WebTransport address."""


class InvalidCerthash(AddressError):
    """A certhash is not valid multibase, or not a SHA-256 multihash of 32 bytes."""


class ListenError(WebTransportError):
    """Listening failed (bad address, address carrying a certhash, bind error)."""


# --- endpoint ----------------------------------------------------------------------------------


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


# --- perf protocol --------------------------------------------------------------------------------


class PerfError(WebTransportError):
    """A ``/perf/1.0.0`` exchange broke the protocol (short request header, wrong byte count)."""


class ContentError(WebTransportError):
    """The use-case protocols (apps/files.py): a malformed or unknown CID, a bad request line."""
