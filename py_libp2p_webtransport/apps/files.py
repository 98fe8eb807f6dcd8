"""File upload and fetch-by-CID between a browser and the node, over two small protocols of ours.

Content is addressed like IPFS does it: a file is cut into blocks of raw bytes, each named by a
CIDv1 (``raw`` codec, sha2-256); a root block (``json`` codec) lists the blocks and the size. A
client that asks for the root CID can verify every block it gets against its name.

``/py-libp2p-webtransport/upload/1.0.0``
    The client sends the file's bytes and closes its side; the node stores the file (adding its
    blocks to the store) and answers one JSON object: ``{"bytes", "sha256", "cid"}``.

``/py-libp2p-webtransport/fetch/1.0.0``
    The client sends a CID as text and a newline. The node answers a status byte: ``0`` then
    frames of ``u32 big-endian length + block`` (the root first, then the leaves in order) until
    EOF; or ``1`` then a UTF-8 error message (unknown or malformed CID).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

from ..errors import ContentError

UPLOAD_PROTOCOL = TProtocol("/py-libp2p-webtransport/upload/1.0.0")
FETCH_PROTOCOL = TProtocol("/py-libp2p-webtransport/fetch/1.0.0")

BLOCK_SIZE = 256 * 1024
MAX_UPLOAD = 64 * 1024 * 1024
MAX_REQUEST_LINE = 512
_READ = 1 << 16

CODEC_RAW = 0x55
CODEC_JSON = 0x0200
_SHA2_256 = 0x12


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def make_cid(data: bytes, codec: int = CODEC_RAW) -> str:
    """CIDv1 of ``data`` (sha2-256) in base32, as IPFS prints it (``bafk…`` for raw)."""
    digest = hashlib.sha256(data).digest()
    raw = b"\x01" + _varint(codec) + bytes([_SHA2_256, len(digest)]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def check_cid(text: str) -> str:
    """Return ``text`` if it is a base32 sha2-256 CIDv1, else raise ContentError."""
    if not text.startswith("b") or len(text) > 128:
        raise ContentError(f"not a base32 CIDv1: {text[:80]!r}")
    body = text[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise ContentError(f"not a base32 CIDv1: {text[:80]!r}") from exc
    if len(raw) < 4 or raw[0] != 1 or raw[-34:-32] != bytes([_SHA2_256, 32]):
        raise ContentError(f"not a sha2-256 CIDv1: {text[:80]!r}")
    return text


@dataclass
class StoredFile:
    """One file in the store: its root CID, size, sha256 and the CIDs of its blocks."""

    cid: str
    size: int
    sha256: str
    blocks: list[str]


@dataclass
class ContentStore:
    """Blocks by CID, in memory, plus the files they make up."""

    block_size: int = BLOCK_SIZE
    blocks: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)

    def add_file(self, data: bytes) -> StoredFile:
        """Chunk ``data`` into blocks, store them and a root block; return the file's entry."""
        leaves = []
        for off in range(0, len(data), self.block_size):
            block = data[off : off + self.block_size]
            cid = make_cid(block)
            self.blocks[cid] = block
            leaves.append(cid)
        root = json.dumps({"size": len(data), "blocks": leaves}, separators=(",", ":")).encode()
        root_cid = make_cid(root, CODEC_JSON)
        self.blocks[root_cid] = root
        entry = StoredFile(root_cid, len(data), hashlib.sha256(data).hexdigest(), leaves)
        self.files[root_cid] = entry
        return entry

    def blocks_for(self, cid: str) -> list[bytes]:
        """The blocks to send for ``cid``: a file's root and its leaves, or the one block."""
        check_cid(cid)
        if cid in self.files:
            return [self.blocks[cid]] + [self.blocks[c] for c in self.files[cid].blocks]
        if cid in self.blocks:
            return [self.blocks[cid]]
        raise ContentError(f"unknown CID {cid}")


async def _read_some(stream: INetStream, n: int) -> bytes:
    """Up to ``n`` bytes; ``b""`` at the end of the stream (our streams raise StreamEOF there,
    as py-libp2p's other muxers do)."""
    try:
        return await stream.read(n)
    except StreamEOF:
        return b""


async def _read_line(stream: INetStream) -> str:
    """Read one request line (bounded); ContentError if it is too long or never ends."""
    buf = bytearray()
    while b"\n" not in buf:
        data = await _read_some(stream, MAX_REQUEST_LINE)
        if not data:
            raise ContentError("request ended before its newline")
        buf += data
        if len(buf) > MAX_REQUEST_LINE:
            raise ContentError("request line too long")
    try:
        return bytes(buf).split(b"\n", 1)[0].decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ContentError("request line is not ASCII") from exc


class FileService:
    """The upload and fetch handlers for one host, sharing one ContentStore."""

    def __init__(self, store: ContentStore | None = None, max_upload: int = MAX_UPLOAD) -> None:
        self.store = store if store is not None else ContentStore()
        self.max_upload = max_upload
        self.uploads: list[StoredFile] = []

    def handlers(self) -> dict[TProtocol, object]:
        """Protocol id → handler, for ``host.set_stream_handler``."""
        return {UPLOAD_PROTOCOL: self.handle_upload, FETCH_PROTOCOL: self.handle_fetch}

    async def handle_upload(self, stream: INetStream) -> None:
        """Read the file until EOF, store it, answer its size, sha256 and CID."""
        chunks: list[bytes] = []
        total = 0
        while True:
            data = await _read_some(stream, _READ)
            if not data:
                break
            total += len(data)
            if total > self.max_upload:
                await stream.reset()
                return
            chunks.append(data)
        entry = self.store.add_file(b"".join(chunks))
        self.uploads.append(entry)
        answer = {"bytes": entry.size, "sha256": entry.sha256, "cid": entry.cid}
        await stream.write(json.dumps(answer).encode())
        await stream.close()

    async def handle_fetch(self, stream: INetStream) -> None:
        """Answer a CID request with its verified blocks, or a status-1 error message."""
        try:
            blocks = self.store.blocks_for(await _read_line(stream))
        except ContentError as exc:
            await stream.write(b"\x01" + str(exc).encode())
            await stream.close()
            return
        await stream.write(b"\x00")
        for block in blocks:
            await stream.write(len(block).to_bytes(4, "big") + block)
        await stream.close()


# --- clients (Python to Python; the browser has its own in demo/src) ------------------------------


async def _read_exact(stream: INetStream, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        data = await _read_some(stream, max(n - len(buf), _READ))
        if not data:
            raise ContentError(f"stream ended {n - len(buf)} bytes short of a block")
        buf += data
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _verified(cid: str, block: bytes, codec: int) -> bytes:
    if make_cid(block, codec) != cid:
        raise ContentError(f"block does not match {cid}")
    return block


async def upload(host: IHost, peer: ID, data: bytes) -> dict[str, object]:
    """Upload ``data`` to ``peer`` over UPLOAD_PROTOCOL; returns its answer (bytes, sha256, cid)."""
    stream = await host.new_stream(peer, [UPLOAD_PROTOCOL])
    for off in range(0, len(data), _READ):
        await stream.write(data[off : off + _READ])
    await stream.close()
    answer = bytearray()
    while chunk := await _read_some(stream, _READ):
        answer += chunk
    result: dict[str, object] = json.loads(answer)
    return result


async def fetch(host: IHost, peer: ID, cid: str) -> bytes:
    """Fetch the file ``cid`` from ``peer`` over FETCH_PROTOCOL, verifying every block.

    Raises ContentError when the node refuses (its message included) or a block does not match.
    """
    stream = await host.new_stream(peer, [FETCH_PROTOCOL])
    await stream.write(cid.encode() + b"\n")
    buf = bytearray()
    status = await _read_exact(stream, 1, buf)
    if status != b"\x00":
        rest = bytes(buf)
        while chunk := await _read_some(stream, _READ):
            rest += chunk
        raise ContentError(f"fetch refused: {rest.decode(errors='replace')}")

    async def next_block() -> bytes:
        size = int.from_bytes(await _read_exact(stream, 4, buf), "big")
        return await _read_exact(stream, size, buf)

    root = await next_block()
    try:
        _verified(cid, root, CODEC_JSON)
        manifest = json.loads(root)
    except ContentError:
        return _verified(cid, root, CODEC_RAW)
    parts = [_verified(leaf, await next_block(), CODEC_RAW) for leaf in manifest["blocks"]]
    return b"".join(parts)
