"""WebTransport multiaddrs and certhashes.

A WebTransport address is ``/<ip4|ip6|dns|dns4|dns6>/<host>/udp/<port>/quic-v1/webtransport``
followed by any number of ``/certhash/<multibase(multihash)>`` components and an optional
``/p2p/<peer id>`` (libp2p specs ``webtransport/README.md``; go-libp2p ``multiaddr.go``).
``/quic`` is accepted in place of ``/quic-v1`` on parse; ``/sni/<name>`` may appear once after
``/quic-v1``.

py-multiaddr 0.2.0 gap, worked around here: its ``certhash`` codec refuses every multibase but
base64url (``u``) when parsing a *string*, although the spec says any multibase is valid (go and js
accept all). Strings given to this module are therefore normalised first: each certhash value is
decoded with any multibase and re-encoded as base64url before py-multiaddr sees it. The binary form
holds raw multihash bytes, so it is unaffected.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import multibase
from libp2p.peer.id import ID
from multiaddr import Multiaddr
from multiaddr import protocols as ma_protocols

from ._errors import AddressError, InvalidCerthash
from .constants import WELL_KNOWN_PATH

__all__ = [
    "SHA256_MULTIHASH_CODE",
    "SHA256_DIGEST_SIZE",
    "QuicAddress",
    "WebTransportAddress",
    "certhash_digest",
    "certhash_multihash",
    "decode_certhash",
    "encode_certhash",
    "is_quic_multiaddr",
    "is_webtransport_multiaddr",
    "multihash_to_text",
    "parse_multiaddr",
    "parse_quic_multiaddr",
    "parse_webtransport_multiaddr",
    "url_for",
    "with_certhashes",
    "without_certhashes",
]

SHA256_MULTIHASH_CODE = 0x12
SHA256_DIGEST_SIZE = 32
_SHA256_PREFIX = bytes((SHA256_MULTIHASH_CODE, SHA256_DIGEST_SIZE))

HostFamily = Literal["ip4", "ip6", "dns", "dns4", "dns6"]
_HOST_PROTOCOLS: frozenset[str] = frozenset({"ip4", "ip6", "dns", "dns4", "dns6"})
_QUIC_PROTOCOLS: frozenset[str] = frozenset({"quic-v1", "quic"})

MultiaddrLike: TypeAlias = "Multiaddr | str | bytes"


# --- certhash values ---------------------------------------------------------------------------


def certhash_multihash(der: bytes) -> bytes:
    """Return the SHA-256 multihash (``0x12 0x20 || sha256(der)``) of a DER certificate."""
    return _SHA256_PREFIX + hashlib.sha256(der).digest()


def certhash_digest(mh: bytes) -> bytes:
    """Return the 32-byte digest of a SHA-256 multihash; ``InvalidCerthash`` for anything else."""
    if len(mh) < 2 or mh[0] != SHA256_MULTIHASH_CODE:
        raise InvalidCerthash(f"certhash is not a SHA-256 multihash: {bytes(mh[:2]).hex()!r}")
    if mh[1] != SHA256_DIGEST_SIZE or len(mh) != 2 + SHA256_DIGEST_SIZE:
        raise InvalidCerthash(
            f"SHA-256 certhash must carry 32 bytes (length byte {mh[1]}, {len(mh) - 2} present)"
        )
    return bytes(mh[2:])


def multihash_to_text(mh: bytes) -> str:
    """Print multihash bytes as multibase base64url (``u…``), the form Kubo and go print."""
    certhash_digest(mh)  # validate
    return "u" + base64.urlsafe_b64encode(mh).decode("ascii").rstrip("=")


def encode_certhash(der: bytes) -> str:
    """The certhash text (``u`` + base64url of the SHA-256 multihash) of a DER certificate."""
    return multihash_to_text(certhash_multihash(der))


def decode_certhash(text: str) -> bytes:
    """Decode a certhash written in any multibase; return the multihash bytes.

    Raises ``InvalidCerthash`` for bad multibase, a hash other than SHA-256 or a wrong length.
    """
    if not isinstance(text, str) or not text:
        raise InvalidCerthash(f"certhash must be a non-empty string, got {text!r}")
    try:
        decoded = multibase.decode(text)
    except Exception as exc:  # py-multibase raises ValueError subclasses, and worse on odd input
        raise InvalidCerthash(f"certhash {text!r} is not valid multibase: {exc}") from exc
    mh = bytes(decoded)
    certhash_digest(mh)
    return mh


# --- addresses ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebTransportAddress:
    """A parsed WebTransport multiaddr."""

    host: str
    """IP address text (no brackets) or DNS name."""
    port: int
    family: HostFamily
    """The host protocol: ``ip4``, ``ip6``, ``dns``, ``dns4`` or ``dns6``."""
    certhashes: tuple[bytes, ...]
    """SHA-256 multihash bytes, in address order (duplicates removed)."""
    peer_id: ID | None
    sni: str | None
    """Server name: the ``/sni`` value, else the DNS name, else ``None`` (IP addresses)."""

    @property
    def is_dns(self) -> bool:
        """True when ``host`` is a name that must be resolved."""
        return self.family.startswith("dns")


def _normalise_string(text: str) -> str:
    """Re-encode every certhash value of a multiaddr string as base64url (see module docstring)."""
    if not text.startswith("/"):
        raise AddressError(f"multiaddr must start with '/': {text!r}")
    parts = text.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # tolerate one trailing slash
    out: list[str] = []
    i = 0
    while i < len(parts):
        name = parts[i]
        try:
            proto = ma_protocols.protocol_with_name(name)
        except Exception as exc:
            raise AddressError(f"unknown multiaddr protocol {name!r} in {text!r}") from exc
        out.append(name)
        i += 1
        if proto.codec is None:
            continue
        if proto.path:  # a path protocol swallows the rest of the string
            out.extend(parts[i:])
            break
        if i >= len(parts):
            raise AddressError(f"multiaddr protocol {name!r} needs a value in {text!r}")
        value = parts[i]
        if name == "certhash":
            value = multihash_to_text(decode_certhash(value))
        out.append(value)
        i += 1
    return "/" + "/".join(out)


def _to_multiaddr(maddr: MultiaddrLike) -> Multiaddr:
    if isinstance(maddr, Multiaddr):
        return maddr
    try:
        if isinstance(maddr, str):
            return Multiaddr(_normalise_string(maddr))
        if isinstance(maddr, (bytes, bytearray, memoryview)):
            return Multiaddr(bytes(maddr))
    except (AddressError, InvalidCerthash):
        raise
    except Exception as exc:  # py-multiaddr raises several unrelated types
        raise AddressError(f"invalid multiaddr {maddr!r}: {exc}") from exc
    raise AddressError(f"expected a Multiaddr, str or bytes, got {type(maddr).__name__}")


def parse_multiaddr(maddr: MultiaddrLike) -> Multiaddr:
    """Any multiaddr (certhashes in any multibase); ``AddressError`` if malformed."""
    ma = _to_multiaddr(maddr)
    try:
        ma.to_bytes()
    except Exception as exc:  # py-multiaddr defers some checks to encoding
        raise AddressError(f"invalid multiaddr {maddr!r}: {exc}") from exc
    return ma


def _components(maddr: Multiaddr) -> list[tuple[str, str | None]]:
    try:
        return [(proto.name, value) for proto, value in maddr.items()]
    except Exception as exc:
        raise AddressError(f"invalid multiaddr: {exc}") from exc


def parse_webtransport_multiaddr(maddr: MultiaddrLike) -> WebTransportAddress:
    """Parse a WebTransport multiaddr; ``AddressError`` (or ``InvalidCerthash``) if malformed."""
    ma = _to_multiaddr(maddr)
    try:
        key = ma.to_bytes()
    except Exception as exc:
        raise AddressError(f"invalid multiaddr: {exc}") from exc
    return _parse_binary(key, ma)


# A dial parses its address 3 times (the swarm's can_dial, ours, the dial itself) and
# py-multiaddr renders each certhash through a slow pure-Python multibase codec: ~1 ms per parse.
# Results are immutable, so they are cached by the binary form (errors are not cached).
_PARSE_CACHE: dict[bytes, WebTransportAddress] = {}
_PARSE_CACHE_SIZE = 256


def _parse_binary(key: bytes, ma: Multiaddr) -> WebTransportAddress:
    cached = _PARSE_CACHE.get(key)
    if cached is not None:
        return cached
    parsed = _parse(ma)
    if len(_PARSE_CACHE) >= _PARSE_CACHE_SIZE:
        _PARSE_CACHE.pop(next(iter(_PARSE_CACHE)))  # oldest first: bounded memory
    _PARSE_CACHE[key] = parsed
    return parsed


def _parse(ma: Multiaddr) -> WebTransportAddress:
    comps = _components(ma)

    def fail(why: str) -> AddressError:
        return AddressError(f"not a WebTransport multiaddr ({why}): {ma}")

    if len(comps) < 4:
        raise fail("too short")
    (family, host), (udp, port_text), (quic, _), *rest = comps
    if family not in _HOST_PROTOCOLS or not host:
        raise fail("must start with /ip4, /ip6, /dns, /dns4 or /dns6")
    if udp != "udp" or port_text is None:
        raise fail("/udp/<port> must follow the host")
    if quic not in _QUIC_PROTOCOLS:
        raise fail("/quic-v1 must follow /udp")
    sni: str | None = None
    if rest and rest[0][0] == "sni":
        sni = rest.pop(0)[1]
    if not rest or rest[0][0] != "webtransport":
        raise fail("/webtransport must follow /quic-v1")
    rest.pop(0)
    hashes: list[bytes] = []
    peer_id: ID | None = None
    for index, (name, value) in enumerate(rest):
        if name == "certhash" and value is not None:
            mh = decode_certhash(value)
            if mh not in hashes:
                hashes.append(mh)
        elif name == "sni" and sni is None and value:
            sni = value
        elif name == "p2p" and value and index == len(rest) - 1:
            try:
                peer_id = ID.from_base58(value)
            except Exception as exc:
                raise fail(f"bad peer id {value!r}") from exc
        else:
            raise fail(f"unexpected /{name} after /webtransport")
    port = int(port_text)
    if sni is None and family.startswith("dns"):
        sni = host
    return WebTransportAddress(
        host=host,
        port=port,
        family=family,  # type: ignore[arg-type]  # checked against _HOST_PROTOCOLS above
        certhashes=tuple(hashes),
        peer_id=peer_id,
        sni=sni,
    )


@dataclass(frozen=True, slots=True)
class QuicAddress:
    """A parsed ``/quic-v1`` multiaddr (libp2p over QUIC itself, not WebTransport)."""

    host: str
    port: int
    family: HostFamily
    peer_id: ID | None

    @property
    def is_dns(self) -> bool:
        return self.family.startswith("dns")


def parse_quic_multiaddr(maddr: MultiaddrLike) -> QuicAddress:
    """Parse ``/<ip4|ip6|dns*>/<host>/udp/<port>/quic-v1[/p2p/<id>]``.

    ``AddressError`` for anything else; draft-29 ``/quic`` gets its own message (QUIC v1,
    RFC 9000, is the only version we speak), and a ``/webtransport`` address is not ours.
    """
    ma = _to_multiaddr(maddr)
    comps = _components(ma)

    def fail(why: str) -> AddressError:
        return AddressError(f"not a /quic-v1 multiaddr ({why}): {ma}")

    if len(comps) < 3:
        raise fail("too short")
    (family, host), (udp, port_text), (quic, _), *rest = comps
    if family not in _HOST_PROTOCOLS or not host:
        raise fail("must start with /ip4, /ip6, /dns, /dns4 or /dns6")
    if udp != "udp" or port_text is None:
        raise fail("/udp/<port> must follow the host")
    if quic == "quic":
        raise AddressError(
            f"{ma}: /quic is QUIC draft-29, which this transport does not speak; "
            "dial the peer's /quic-v1 address (RFC 9000)"
        )
    if quic != "quic-v1":
        raise fail("/quic-v1 must follow /udp")
    peer_id: ID | None = None
    if rest:
        name, value = rest[0]
        if name != "p2p" or len(rest) > 1 or not value:
            raise fail(f"unexpected /{name} after /quic-v1")
        try:
            peer_id = ID.from_base58(value)
        except Exception as exc:
            raise fail(f"bad peer id {value!r}") from exc
    return QuicAddress(host=host, port=int(port_text), family=family, peer_id=peer_id)  # type: ignore[arg-type]


def is_quic_multiaddr(maddr: MultiaddrLike, *, draft29: bool = False) -> bool:
    """True for a well-formed ``/quic-v1`` address (with ``draft29``: also ``/quic`` ones, so
    a dial of one reaches us and fails with a clear message)."""
    try:
        parse_quic_multiaddr(maddr)
    except AddressError as error:
        return draft29 and "draft-29" in str(error)
    return True


def is_webtransport_multiaddr(maddr: MultiaddrLike) -> bool:
    """True when ``maddr`` is a well-formed WebTransport multiaddr (certhashes optional)."""
    try:
        parse_webtransport_multiaddr(maddr)
    except AddressError:
        return False
    return True


def without_certhashes(maddr: MultiaddrLike) -> Multiaddr:
    """Return the WebTransport multiaddr with every ``/certhash`` component removed."""
    ma = _to_multiaddr(maddr)
    parse_webtransport_multiaddr(ma)  # validate the shape first
    text = "".join(
        f"/{name}" if value is None else f"/{name}/{value}"
        for name, value in _components(ma)
        if name != "certhash"
    )
    return Multiaddr(text)


def with_certhashes(maddr: MultiaddrLike, hashes: Iterable[bytes]) -> Multiaddr:
    """Replace the address's certhashes with ``hashes`` (multihash bytes), keeping ``/p2p`` last."""
    ma = without_certhashes(maddr)
    comps = _components(ma)
    tail = [comps.pop()] if comps[-1][0] == "p2p" else []
    parts = [f"/{name}" if value is None else f"/{name}/{value}" for name, value in comps]
    seen: list[bytes] = []
    for mh in hashes:
        if bytes(mh) not in seen:
            seen.append(bytes(mh))
            parts.append(f"/certhash/{multihash_to_text(bytes(mh))}")
    parts.extend(f"/{name}/{value}" for name, value in tail)
    return Multiaddr("".join(parts))


def url_for(addr: WebTransportAddress) -> str:
    """The HTTPS URL a WebTransport client opens: ``https://host:port/.well-known/…?type=noise``."""
    host = f"[{addr.host}]" if addr.family == "ip6" else addr.host
    return f"https://{host}:{addr.port}{WELL_KNOWN_PATH}?type=noise"
