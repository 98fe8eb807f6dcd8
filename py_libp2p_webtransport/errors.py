"""Every exception of the package, in one place for users.

The sans-IO errors (protocol, framing, settings, flow control, engines, packets, Retry tokens,
addresses) are defined in ``_errors`` and re-exported here; the ones defined here are the
libp2p-facing errors: dial failures are py-libp2p ``OpenConnectionError``s (so the swarm handles
them) and a clean end of stream is py-libp2p's ``MuxedStreamEOF``.
"""

from __future__ import annotations

from libp2p.io.exceptions import IOException
from libp2p.stream_muxer.exceptions import MuxedStreamEOF
from libp2p.transport.exceptions import OpenConnectionError

from ._errors import (
    AddressError,
    BufferLimitExceeded,
    EngineError,
    FlowControlError,
    FramingError,
    InvalidCerthash,
    InvalidRetryToken,
    ListenError,
    LocalProtocolError,
    MalformedPacket,
    MessageError,
    NeedMoreData,
    ProtocolError,
    RemoteProtocolError,
    SettingsError,
    StreamIdError,
    StreamLimitReached,
    WebTransportError,
)

__all__ = [
    "AddressError",
    "BufferLimitExceeded",
    "CerthashMismatch",
    "ContentError",
    "DialError",
    "DialTimeout",
    "EngineError",
    "FlowControlError",
    "FramingError",
    "HandshakeError",
    "InvalidCertificate",
    "InvalidCerthash",
    "InvalidPeerCertificate",
    "InvalidRetryToken",
    "ListenError",
    "LocalProtocolError",
    "MalformedPacket",
    "MessageError",
    "MissingCerthash",
    "NeedMoreData",
    "PeerIdMismatch",
    "PerfError",
    "ProtocolError",
    "RemoteProtocolError",
    "SessionRejected",
    "SettingsError",
    "StreamEnded",
    "StreamIdError",
    "StreamLimitReached",
    "Unreachable",
    "WebTransportError",
]


class StreamEnded(MuxedStreamEOF, IOException, EOFError):
    """A read found the peer's clean end of stream (FIN) and nothing left to read.

    py-libp2p's convention (yamux, mplex, its QUIC): ``NetStream`` turns it into ``StreamEOF``,
    and ``read_exactly``/multiselect, which catch ``IOException``, stop at once.
    """


# --- dial errors (OpenConnectionError so py-libp2p's swarm handles them) ---------------------


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


class InvalidPeerCertificate(InvalidCertificate):
    """A libp2p TLS certificate (``/quic-v1``) fails the libp2p/specs ``tls`` checks: chain
    length, validity, self-signature, the signed public-key extension (``libp2p_tls.py``)."""


# --- application protocols -------------------------------------------------------------------


class PerfError(WebTransportError):
    """A ``/perf/1.0.0`` exchange broke the protocol (short request header, wrong byte count)."""


class ContentError(WebTransportError):
    """The use-case protocols (apps/files.py): a malformed or unknown CID, a bad request line."""
