"""UnixFS files and directories, built the way Kubo builds them with ``--cid-version=1``.

Kubo's defaults: raw leaves, 256 KiB chunks, a balanced DAG of at most 174 links per node, and a
one-chunk file is its raw leaf. The same bytes give the same CID as ``@helia/unixfs`` with those
options (``tests/apps/test_unixfs_cids.py`` asks Node for the JS CIDs). Two details py-libp2p
0.8.1's DAG builder gets wrong and this module does not:

- a link to a raw leaf carries the leaf's size as ``Tsize`` (py-libp2p writes 0);
- a last group of one child still gets its own parent node (py-libp2p promotes the child).

Reading back (``cat``, ``resolve``) works over any async block getter, so the same code reads
from the local store or over Bitswap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import ContentError
from .ipld import (
    CID,
    CODEC_DAG_PB,
    CODEC_RAW,
    BlockStore,
    PBLink,
    decode_dag_pb,
    encode_dag_pb,
    protobuf_fields,
    varint,
)

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174

TYPE_RAW = 0
TYPE_DIRECTORY = 1
TYPE_FILE = 2

BlockGetter = Callable[[CID], Awaitable[bytes]]
ManyGetter = Callable[[Sequence[CID]], Awaitable[list[bytes]]]


@dataclass(frozen=True)
class Node:
    """An imported file or directory: its CID, cumulative DAG size (a link's Tsize) and, for a
    file, its byte count."""

    cid: CID
    tsize: int
    file_size: int


def encode_unixfs(kind: int, *, data: bytes = b"", blocksizes: Sequence[int] = ()) -> bytes:
    """UnixFS ``Data`` as ipfs-unixfs marshals it: Type, Data (if any), filesize (files only),
    blocksizes (one unpacked field each)."""
    out = bytearray(b"\x08" + varint(kind))
    if data:
        out += b"\x12" + varint(len(data)) + data
    if kind in (TYPE_FILE, TYPE_RAW):
        out += b"\x18" + varint(len(data) + sum(blocksizes))
    for size in blocksizes:
        out += b"\x20" + varint(size)
    return bytes(out)


@dataclass(frozen=True)
class UnixFSData:
    kind: int
    data: bytes
    file_size: int | None
    blocksizes: tuple[int, ...]


def decode_unixfs(buf: bytes) -> UnixFSData:
    kind: int | None = None
    data = b""
    file_size: int | None = None
    sizes: list[int] = []
    for number, _wire, value in protobuf_fields(buf):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, bytes):
            data = value
        elif number == 3 and isinstance(value, int):
            file_size = value
        elif number == 4 and isinstance(value, int):
            sizes.append(value)
        # hashType, fanout, mode, mtime: not needed to read a file
    if kind is None:
        raise ContentError("UnixFS data without a type")
    return UnixFSData(kind, data, file_size, tuple(sizes))


def _put(store: BlockStore, block: bytes, codec: int) -> CID:
    cid = CID.of(block, codec)
    store.put(cid, block)
    return cid


def _parent(store: BlockStore, children: Sequence[Node]) -> Node:
    links = [PBLink(child.cid, "", child.tsize) for child in children]
    sizes = [child.file_size for child in children]
    block = encode_dag_pb(encode_unixfs(TYPE_FILE, blocksizes=sizes), links)
    cid = _put(store, block, CODEC_DAG_PB)
    return Node(cid, len(block) + sum(child.tsize for child in children), sum(sizes))


def import_file(
    data: bytes,
    store: BlockStore,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> Node:
    """Add ``data`` as a UnixFS file (raw leaves, balanced); returns its root."""
    if chunk_size <= 0 or max_links < 2:
        raise ValueError("chunk_size must be positive and max_links at least 2")
    view = memoryview(data)
    chunks = [bytes(view[off : off + chunk_size]) for off in range(0, len(data), chunk_size)]
    if len(chunks) <= 1:
        leaf = chunks[0] if chunks else b""
        return Node(_put(store, leaf, CODEC_RAW), len(leaf), len(leaf))
    level = [Node(_put(store, chunk, CODEC_RAW), len(chunk), len(chunk)) for chunk in chunks]
    while True:
        # Every group gets its own parent, even a last group of one (as Kubo and the JS importer).
        level = [_parent(store, level[i : i + max_links]) for i in range(0, len(level), max_links)]
        if len(level) == 1:
            return level[0]


def _directory(store: BlockStore, entries: dict[str, Node]) -> Node:
    links = [PBLink(node.cid, name, node.tsize) for name, node in entries.items()]
    block = encode_dag_pb(encode_unixfs(TYPE_DIRECTORY), links)
    cid = _put(store, block, CODEC_DAG_PB)
    return Node(cid, len(block) + sum(node.tsize for node in entries.values()), 0)


def import_directory(
    files: Iterable[tuple[str, bytes]],
    store: BlockStore,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> Node:
    """Add files given as (``a/b/name``, bytes) under one directory; returns the directory.

    Intermediate directories are made from the paths; a name may not be empty, ``.`` or ``..``.
    (Directories large enough for Kubo to shard them are not supported.)
    """
    tree: dict[str, object] = {}
    for path, data in files:
        parts = path.strip("/").split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ContentError(f"bad path {path!r}")
        here = tree
        for part in parts[:-1]:
            sub = here.setdefault(part, {})
            if not isinstance(sub, dict):
                raise ContentError(f"{path!r}: {part!r} is a file")
            here = sub
        if parts[-1] in here:
            raise ContentError(f"duplicate path {path!r}")
        here[parts[-1]] = import_file(data, store, chunk_size, max_links)

    def build(level: dict[str, object]) -> Node:
        nodes = {
            name: build(child) if isinstance(child, dict) else child
            for name, child in level.items()
        }
        return _directory(store, nodes)  # type: ignore[arg-type]

    return build(tree)


# --- reading ------------------------------------------------------------------------------------


def store_getter(store: BlockStore) -> BlockGetter:
    """A block getter over a local store (ContentError for a missing block)."""

    async def get(cid: CID) -> bytes:
        block = store.get(cid)
        if block is None:
            raise ContentError(f"block {cid} not found")
        return block

    return get


async def _get_many(get: BlockGetter, get_many: ManyGetter | None, cids: list[CID]) -> list[bytes]:
    if get_many is not None:
        return await get_many(cids)
    return [await get(cid) for cid in cids]


async def cat(get: BlockGetter, cid: CID, get_many: ManyGetter | None = None) -> bytes:
    """The bytes of the UnixFS file ``cid``; ``get_many`` (optional) fetches siblings at once."""
    out = bytearray()
    level = [cid]
    # Breadth-first, one level at a time: the leaves come out in file order.
    while level:
        blocks = await _get_many(get, get_many, level)
        next_level: list[CID] = []
        for child, block in zip(level, blocks, strict=True):
            if child.codec == CODEC_RAW:
                if next_level:
                    raise ContentError("a raw leaf beside inner nodes")  # unbalanced: not ours
                out += block
                continue
            node = decode_dag_pb(block)
            info = decode_unixfs(node.data or b"")
            if info.kind not in (TYPE_FILE, TYPE_RAW):
                raise ContentError(f"{child} is not a file (UnixFS type {info.kind})")
            if info.data and node.links:
                raise ContentError(f"{child}: data and links in one node is not supported")
            out += info.data
            next_level.extend(link.cid for link in node.links)
        if next_level and out:
            raise ContentError("leaves at different depths are not supported")
        level = next_level
    return bytes(out)


async def resolve(get: BlockGetter, root: CID, path: str) -> CID:
    """The CID at ``path`` (``a/b``) below the directory ``root``."""
    cid = root
    for part in [p for p in path.split("/") if p]:
        node = decode_dag_pb(await get(cid))
        if decode_unixfs(node.data or b"").kind != TYPE_DIRECTORY:
            raise ContentError(f"{cid} is not a directory")
        found = [link.cid for link in node.links if link.name == part]
        if not found:
            raise ContentError(f"no {part!r} in {cid}")
        cid = found[0]
    return cid
