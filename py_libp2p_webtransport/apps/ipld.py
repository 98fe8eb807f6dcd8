"""Content addressing as IPFS does it: CIDs, sha2-256 multihashes, a block store, and dag-pb.

Small and strict on purpose: only sha2-256 multihashes (what Kubo and Helia create by default),
CIDv0 and CIDv1, and the canonical dag-pb encoding (links before data, links sorted by name) that
`@ipld/dag-pb` and go-codec-dagpb produce, so a node built here hashes to the same CID as theirs.
Malformed input raises ``ContentError`` with what was wrong.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ContentError

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
SHA2_256 = 0x12
_DIGEST_LEN = 32
MAX_CID_LEN = 128


def varint(n: int) -> bytes:
    """Unsigned LEB128, as multiformats and protobuf use."""
    if n < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; returns (value, next position). ContentError if truncated."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ContentError("truncated varint")
        if shift > 63:
            raise ContentError("varint too long")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


@dataclass(frozen=True)
class CID:
    """A CID: version, codec and a sha2-256 digest. ``bytes(cid)`` is its binary form."""

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise ContentError(f"unsupported CID version {self.version}")
        if self.version == 0 and self.codec != CODEC_DAG_PB:
            raise ContentError("a CIDv0 is always dag-pb")
        if len(self.digest) != _DIGEST_LEN:
            raise ContentError("not a sha2-256 digest")

    @classmethod
    def of(cls, data: bytes, codec: int = CODEC_RAW) -> CID:
        """The CIDv1 of ``data`` with ``codec``."""
        return cls(1, codec, hashlib.sha256(data).digest())

    @property
    def multihash(self) -> bytes:
        return bytes([SHA2_256, _DIGEST_LEN]) + self.digest

    def __bytes__(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return b"\x01" + varint(self.codec) + self.multihash

    def prefix(self) -> bytes:
        """Bitswap 1.1's block prefix: version, codec, hash function, digest length."""
        return varint(self.version) + varint(self.codec) + bytes([SHA2_256, _DIGEST_LEN])

    def __str__(self) -> str:
        if self.version == 0:
            return _base58(self.multihash)
        return "b" + base64.b32encode(bytes(self)).decode().lower().rstrip("=")

    def verify(self, block: bytes) -> bytes:
        """``block`` if it hashes to this CID, else ContentError."""
        if hashlib.sha256(block).digest() != self.digest:
            raise ContentError(f"block does not match {self}")
        return block

    @classmethod
    def decode(cls, raw: bytes) -> CID:
        """From the binary form (CIDv0: a bare multihash)."""
        if len(raw) > MAX_CID_LEN:
            raise ContentError("CID too long")
        if len(raw) == 34 and raw[0] == SHA2_256:
            return cls(0, CODEC_DAG_PB, bytes(raw[2:]))
        version, pos = read_varint(raw, 0)
        if version != 1:
            raise ContentError(f"unsupported CID version {version}")
        codec, pos = read_varint(raw, pos)
        code, pos = read_varint(raw, pos)
        length, pos = read_varint(raw, pos)
        if code != SHA2_256 or length != _DIGEST_LEN or len(raw) != pos + length:
            raise ContentError(f"not a sha2-256 CID: {raw.hex()[:80]}")
        return cls(1, codec, bytes(raw[pos:]))

    @classmethod
    def from_prefix(cls, prefix: bytes, block: bytes) -> CID:
        """The CID a Bitswap 1.1 ``payload`` entry names: its prefix plus the block's hash."""
        version, pos = read_varint(prefix, 0)
        codec, pos = read_varint(prefix, pos)
        code, pos = read_varint(prefix, pos)
        length, pos = read_varint(prefix, pos)
        if code != SHA2_256 or length != _DIGEST_LEN:
            raise ContentError(f"unsupported multihash {code:#x}/{length} in a block prefix")
        return cls(version, codec, hashlib.sha256(block).digest())

    @classmethod
    def parse(cls, text: str) -> CID:
        """From text: base32 CIDv1 (``b…``) or base58btc CIDv0 (``Qm…``)."""
        if len(text) > 2 * MAX_CID_LEN:
            raise ContentError("CID text too long")
        if text.startswith("Qm"):
            return cls.decode(_unbase58(text))
        if not text.startswith("b"):
            raise ContentError(f"not a base32 CIDv1 or a CIDv0: {text[:80]!r}")
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError as exc:
            raise ContentError(f"not a base32 CIDv1: {text[:80]!r}") from exc
        return cls.decode(raw)


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _unbase58(text: str) -> bytes:
    n = 0
    for ch in text:
        if ch not in _B58:
            raise ContentError(f"not base58: {text[:80]!r}")
        n = n * 58 + _B58.index(ch)
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


class BlockStore:
    """Blocks in memory, keyed by multihash as Kubo's blockstore is (a CIDv0 and a CIDv1 of the
    same bytes name the same block)."""

    def __init__(self) -> None:
        self._blocks: dict[bytes, bytes] = {}

    def put(self, cid: CID, block: bytes) -> None:
        self._blocks[cid.multihash] = cid.verify(block)

    def get(self, cid: CID) -> bytes | None:
        return self._blocks.get(cid.multihash)

    def __contains__(self, cid: CID) -> bool:
        return cid.multihash in self._blocks

    def __len__(self) -> int:
        return len(self._blocks)


# --- dag-pb -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PBLink:
    cid: CID
    name: str | None
    tsize: int | None


@dataclass(frozen=True)
class PBNode:
    data: bytes | None
    links: tuple[PBLink, ...]


def _field(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _field(number, 2) + varint(len(value)) + value


def encode_dag_pb(data: bytes | None, links: Iterable[PBLink]) -> bytes:
    """Canonical dag-pb: PBLinks (field 2) sorted by name bytes, then Data (field 1); within a
    link Hash, Name, Tsize. A ``None`` name or tsize is left out; ``""`` is written."""
    ordered = sorted(links, key=lambda link: (link.name or "").encode())
    out = bytearray()
    for link in ordered:
        body = _bytes_field(1, bytes(link.cid))
        if link.name is not None:
            body += _bytes_field(2, link.name.encode())
        if link.tsize is not None:
            body += _field(3, 0) + varint(link.tsize)
        out += _bytes_field(2, body)
    if data is not None:
        out += _bytes_field(1, data)
    return bytes(out)


def _fields(buf: bytes) -> Iterable[tuple[int, int, int | bytes]]:
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = read_varint(buf, pos)
            yield number, wire_type, value
        elif wire_type == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise ContentError("truncated protobuf field")
            yield number, wire_type, bytes(buf[pos : pos + length])
            pos += length
        else:
            raise ContentError(f"unexpected protobuf wire type {wire_type}")


def decode_dag_pb(block: bytes) -> PBNode:
    """Parse a dag-pb block (any field order is accepted; unknown fields are refused)."""
    data: bytes | None = None
    links: list[PBLink] = []
    for number, wire_type, value in _fields(block):
        if number == 1 and wire_type == 2 and isinstance(value, bytes):
            data = value
        elif number == 2 and wire_type == 2 and isinstance(value, bytes):
            cid: CID | None = None
            name: str | None = None
            tsize: int | None = None
            for n, w, v in _fields(value):
                if n == 1 and w == 2 and isinstance(v, bytes):
                    cid = CID.decode(v)
                elif n == 2 and w == 2 and isinstance(v, bytes):
                    name = v.decode()
                elif n == 3 and w == 0 and isinstance(v, int):
                    tsize = v
                else:
                    raise ContentError(f"unexpected field {n} in a dag-pb link")
            if cid is None:
                raise ContentError("dag-pb link without a hash")
            links.append(PBLink(cid, name, tsize))
        else:
            raise ContentError(f"unexpected field {number} in a dag-pb node")
    return PBNode(data, tuple(links))


def protobuf_fields(buf: bytes) -> Iterable[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a flat protobuf message (varints and bytes only)."""
    return _fields(buf)
