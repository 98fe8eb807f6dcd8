"""QPACK header blocks (via pylsqpack) and extended-CONNECT request/response rules.

Our QPACK dynamic table capacity is 0 in both directions (we advertise capacity 0 and blocked
streams 0, and never raise our encoder's capacity): every header block uses only the static table
and literals, so no request stream can block on the QPACK encoder stream and both QPACK streams
carry nothing we need to act on. Sources: RFC 9114 §4.3 (pseudo-headers), RFC 9220 (extended
CONNECT), libp2p webtransport spec (path and query), requirements checklist §D 20-22, §E 27-29.
"""

from __future__ import annotations

from dataclasses import dataclass

import pylsqpack

from .._errors import MessageError, RemoteProtocolError
from ..constants import H3ErrorCode
from .config import H3Config
from .settings import ACCEPTED_PROTOCOLS, PROTOCOL_DRAFT02

Headers = list[tuple[bytes, bytes]]

_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})


class HeaderCodec:
    """One connection's QPACK encoding and decoding, both limited to the static table.

    With no dynamic table and no blocked streams, neither side keeps state from one header
    block to the next (nothing is inserted, nothing waits on the encoder stream), so every
    connection uses the same pylsqpack encoder and decoder: a Decoder alone holds 4.4 KiB, 7 %
    of an idle connection's memory when each connection had its own.
    """

    def __init__(self) -> None:
        self._encoder, self._decoder = _shared_codecs()

    def encode(self, stream_id: int, headers: Headers) -> bytes:
        """Return the header block for ``headers`` (no encoder-stream data is ever produced)."""
        _, block = self._encoder.encode(stream_id, headers)
        return bytes(block)

    def decode(self, stream_id: int, block: bytes) -> tuple[bytes, Headers]:
        """Decode a header block; returns (decoder-stream bytes to send, headers).

        Raises ``RemoteProtocolError`` with QPACK_DECOMPRESSION_FAILED on a bad block, including
        one that references the dynamic table we never allowed.
        """
        try:
            control, headers = self._decoder.feed_header(stream_id, block)
        except (pylsqpack.DecompressionFailed, pylsqpack.StreamBlocked) as exc:
            raise RemoteProtocolError(
                f"QPACK header block on stream {stream_id} undecodable: {exc}",
                H3ErrorCode.QPACK_DECOMPRESSION_FAILED,
            ) from None
        return bytes(control), list(headers)


_codecs: tuple[pylsqpack.Encoder, pylsqpack.Decoder] | None = None


def _shared_codecs() -> tuple[pylsqpack.Encoder, pylsqpack.Decoder]:
    global _codecs
    if _codecs is None:
        # The encoder's capacity stays 0 (apply_settings is never called); the decoder allows
        # capacity 0 and 0 blocked streams, as our SETTINGS say.
        _codecs = (pylsqpack.Encoder(), pylsqpack.Decoder(0, 0))
    return _codecs


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """The fields of a well-formed extended CONNECT."""

    method: str
    protocol: str | None
    scheme: str | None
    authority: str
    path: str
    origin: str | None
    headers: tuple[tuple[bytes, bytes], ...]


def _split_fields(headers: Headers) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """Separate pseudo-headers and regular fields, enforcing RFC 9114 §4.3 ordering rules."""
    pseudo: dict[bytes, bytes] = {}
    regular: dict[bytes, bytes] = {}
    for name, value in headers:
        if name != name.lower():
            raise MessageError(f"header name {name!r} is not lowercase")
        if name.startswith(b":"):
            if regular:
                raise MessageError(f"pseudo-header {name!r} after a regular field")
            if name in pseudo:
                raise MessageError(f"duplicate pseudo-header {name!r}")
            pseudo[name] = value
        elif name not in regular:
            regular[name] = value
    return pseudo, regular


def _text(value: bytes) -> str:
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise MessageError(f"non-ASCII header value {value!r}") from None


def parse_request(headers: Headers) -> ConnectRequest:
    """Validate a request header list; raises ``MessageError`` when it is malformed."""
    pseudo, regular = _split_fields(headers)
    unknown = set(pseudo) - _REQUEST_PSEUDO
    if unknown:
        raise MessageError(f"unknown request pseudo-headers {sorted(unknown)!r}")
    if b":method" not in pseudo:
        raise MessageError("request without :method")
    method = _text(pseudo[b":method"])
    protocol = _text(pseudo[b":protocol"]) if b":protocol" in pseudo else None
    if protocol is not None and method != "CONNECT":
        raise MessageError(":protocol on a non-CONNECT request")
    # Extended CONNECT carries all of :scheme, :authority, :path (RFC 9220 §3).
    needed = (b":scheme", b":authority", b":path") if protocol is not None else (b":authority",)
    for name in needed:
        if not pseudo.get(name):
            raise MessageError(f"request without {name.decode()}")
    origin = regular.get(b"origin")
    return ConnectRequest(
        method=method,
        protocol=protocol,
        scheme=_text(pseudo[b":scheme"]) if b":scheme" in pseudo else None,
        authority=_text(pseudo[b":authority"]),
        path=_text(pseudo.get(b":path", b"")),
        origin=_text(origin) if origin is not None else None,
        headers=tuple(headers),
    )


def request_status(request: ConnectRequest, config: H3Config) -> int:
    """The HTTP status a server answers; 200 means "ask the application" (checklist §D 20-21).

    405 for a method other than CONNECT, 501 for a plain CONNECT or an unknown ``:protocol``,
    404 for another path, 400 when the query is not exactly ``config.required_query``. The
    origin is deliberately not checked: a browser's origin is whatever page runs the dialer.
    """
    if request.method != "CONNECT":
        return 405
    if request.protocol not in ACCEPTED_PROTOCOLS:
        return 501
    path, sep, query = request.path.partition("?")
    if path != config.path:
        return 404
    if config.required_query is not None and (not sep or query != config.required_query):
        return 400
    return 200


def build_request(authority: str, path: str, protocol: str, origin: str | None) -> Headers:
    """Client: the extended CONNECT header list, shaped like Chromium's for draft-02."""
    headers: Headers = [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", authority.encode("ascii")),
        (b":path", path.encode("ascii")),
        (b":protocol", protocol.encode("ascii")),
    ]
    if protocol == PROTOCOL_DRAFT02:
        headers.append((b"sec-webtransport-http3-draft02", b"1"))
    if origin is not None:
        headers.append((b"origin", origin.encode("ascii")))
    return headers


def build_response(status: int) -> Headers:
    """Server: a response header list carrying only ``:status``."""
    return [(b":status", str(status).encode("ascii"))]


def parse_response(headers: Headers) -> int:
    """Client: the ``:status`` of a response; raises ``MessageError`` when malformed."""
    pseudo, _ = _split_fields(headers)
    if set(pseudo) != {b":status"}:
        raise MessageError(f"response pseudo-headers must be exactly :status, got {list(pseudo)}")
    raw = pseudo[b":status"]
    if len(raw) != 3 or not raw.isdigit():
        raise MessageError(f"bad :status {raw!r}")
    return int(raw)
