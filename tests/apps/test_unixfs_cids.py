"""The Python UnixFS importer gives the CIDs that `@helia/unixfs` gives with Kubo's options.

The JS side runs in Node (``demo/tools/unixfs-cids.mjs``, from demo/'s pinned packages): it is
asked for the CIDs of the same bytes in the same run, so no expected CID is written down here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from py_libp2p_webtransport.apps.ipld import CID, BlockStore, decode_dag_pb
from py_libp2p_webtransport.apps.unixfs import (
    CHUNK_SIZE,
    cat,
    decode_unixfs,
    import_directory,
    import_file,
    resolve,
    store_getter,
)
from py_libp2p_webtransport.errors import ContentError

DEMO = Path(__file__).resolve().parents[2] / "demo"
SCRIPT = DEMO / "tools" / "unixfs-cids.mjs"
MiB = 1024 * 1024


def js_cids(*args: str) -> dict[str, str]:
    """Run the Node script; skip (fail under CI) when Node or demo/node_modules is missing."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (DEMO / "node_modules" / "@helia" / "unixfs").is_dir():
        missing = "demo/node_modules is missing (cd demo && npm ci)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"interop tests must run in CI, but {missing}")
        pytest.skip(missing)
    proc = subprocess.run(
        ["node", str(SCRIPT), *args], cwd=DEMO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 10 * MiB]


def _compare_files(tmp_path: Path, sizes: list[int]) -> None:
    paths = {}
    for size in sizes:
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        paths[str(path)] = path
    expected = js_cids("file", *paths)
    for name, path in paths.items():
        store = BlockStore()
        ours = import_file(path.read_bytes(), store)
        assert str(ours.cid) == expected[name], (path.stat().st_size, str(ours.cid), expected[name])


@pytest.mark.interop
def test_file_cids_match_helia_with_kubo_options(tmp_path: Path) -> None:
    _compare_files(tmp_path, SIZES)


@pytest.mark.interop
def test_file_cids_match_where_the_tree_gets_a_second_level(tmp_path: Path) -> None:
    # 174 leaves fill one node; one more leaf makes a second level whose last group has one child.
    _compare_files(tmp_path, [174 * CHUNK_SIZE, 174 * CHUNK_SIZE + 1])


@pytest.mark.interop
@pytest.mark.slow
def test_file_cid_of_100_mib_matches_helia(tmp_path: Path) -> None:
    _compare_files(tmp_path, [100 * MiB])


@pytest.mark.interop
def test_directory_cid_matches_helia(tmp_path: Path) -> None:
    root = tmp_path / "site"
    files = {
        "index.html": b"<h1>hello</h1>\n",
        "empty": b"",
        "docs/a.txt": os.urandom(1000),
        "docs/deeper/big.bin": os.urandom(CHUNK_SIZE * 3 + 7),
        "Zeta": b"capital letters sort before lower case",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    expected = js_cids("dir", str(root))[str(root)]
    store = BlockStore()
    ours = import_directory(files.items(), store)
    assert str(ours.cid) == expected


async def test_cat_and_resolve_read_back_what_was_imported() -> None:
    store = BlockStore()
    big = os.urandom(CHUNK_SIZE * 175 + 3)  # two levels
    root = import_directory([("a/b.bin", big), ("c.txt", b"c")], store)
    get = store_getter(store)
    assert await cat(get, await resolve(get, root.cid, "a/b.bin")) == big
    assert await cat(get, await resolve(get, root.cid, "/c.txt")) == b"c"
    with pytest.raises(ContentError, match="no 'x'"):
        await resolve(get, root.cid, "a/x")
    with pytest.raises(ContentError, match="not a file"):
        await cat(get, root.cid)


def test_links_to_raw_leaves_carry_the_leaf_size_and_a_lone_last_child_is_wrapped() -> None:
    """What py-libp2p 0.8.1's builder does differently (Tsize 0, the lone child promoted)."""
    store = BlockStore()
    root = import_file(os.urandom(CHUNK_SIZE * 175), store)
    top = decode_dag_pb(store.get(root.cid) or b"")
    assert len(top.links) == 2
    lone = decode_dag_pb(store.get(top.links[1].cid) or b"")
    assert [link.tsize for link in lone.links] == [CHUNK_SIZE]
    assert lone.links[0].cid.codec == 0x55
    info = decode_unixfs(lone.data or b"")
    assert (info.file_size, info.blocksizes) == (CHUNK_SIZE, (CHUNK_SIZE,))


@pytest.mark.parametrize(
    "path", ["", "a//b", "../x", "a/./b"], ids=["empty", "double-slash", "dotdot", "dot"]
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(ContentError, match="bad path"):
        import_directory([(path, b"x")], BlockStore())


def test_cid_text_round_trips_and_bad_text_is_refused() -> None:
    cid = CID.of(b"hello")
    assert CID.parse(str(cid)) == cid
    v0 = CID(0, 0x70, cid.digest)
    assert str(v0).startswith("Qm") and CID.parse(str(v0)) == v0
    for bad in ["zzz", "bafy!!", "b" + "a" * 20]:
        with pytest.raises(ContentError):
            CID.parse(bad)
