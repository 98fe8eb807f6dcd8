"""The demo in a browser: ``py-libp2p-webtransport serve --demo`` run as a person would (a
subprocess) and its page clicked through in headless Chromium (demo/e2e.mjs, playwright-core),
with what its sections must show (``check_dht``, ``check_video``);
and the demo's video played from a served host in either browser (the use-case page)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from support.browser_harness import served_host
from support.usecases_harness import DEMO_DIR, require_demo_bundle, run_usecases

from py_libp2p_webtransport.apps.bitswap import running_bitswap
from py_libp2p_webtransport.apps.ipld import BlockStore
from py_libp2p_webtransport.apps.unixfs import import_file

E2E = DEMO_DIR / "e2e.mjs"
VIDEO = DEMO_DIR / "dist" / "video.webm"


def require_demo_video() -> None:
    """Skip (fail under CI) when the page was built without ffmpeg, so it has no video."""
    if VIDEO.is_file():
        return
    missing = "demo/dist/video.webm is missing (apt-get install ffmpeg; cd demo && npm run build)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI, but {missing}")
    pytest.skip(missing)


async def _read_demo_lines(proc: trio.Process) -> dict[str, str]:
    """What ``serve --demo`` prints before its addresses: ``demo: <what> ...`` lines by their
    first word (``open``, ``page``, ...); returns at the first address."""
    assert proc.stdout is not None
    seen = b""
    while b"\n/ip" not in seen:
        chunk = await proc.stdout.receive_some(4096)
        assert chunk, f"serve --demo exited early:\n{seen.decode()}"
        seen += chunk
    lines: dict[str, str] = {}
    for line in seen.decode().splitlines():
        if line.startswith("demo: "):
            first, _, rest = line[len("demo: ") :].partition(" ")
            lines.setdefault(first, rest)
    return lines


async def click_through(
    serve: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    sections: str = "chat,fetch,helia,upload,dht,video",
    screenshot: Path,
    timeout: float = 120,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Start ``serve`` (a ``serve --demo`` command line), click through its page, stop it.

    Returns the ``demo:`` lines it printed and e2e.mjs's report (asserted ok).
    """
    proc = await trio.lowlevel.open_process(
        list(serve), cwd=cwd, env=None if env is None else dict(env), stdout=subprocess.PIPE
    )
    try:
        with trio.fail_after(60):
            printed = await _read_demo_lines(proc)
        url = printed["open"].split()[0]
        e2e = ["node", str(E2E), "--url", url, "--screenshot", str(screenshot)]
        e2e += ["--sections", sections, "--timeout", str(timeout)]
        with trio.fail_after(timeout + 30):
            run = await trio.run_process(e2e, capture_stdout=True, capture_stderr=True, check=False)
    finally:
        proc.terminate()  # SIGTERM: serve shuts down cleanly
        with trio.move_on_after(10):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = run.stdout.decode().strip().splitlines()
    assert lines, f"e2e.mjs printed nothing: {run.stderr.decode()[-2000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    assert out["ok"], f"demo click-through failed at {out.get('step')}: {out.get('error')}\n" + (
        "\n".join(out["logs"][-30:])
    )
    assert out["state"] == "connected"
    return printed, out


def check_dht(printed: dict[str, str], out: dict[str, Any]) -> None:
    """The page's DHT section: through the node's Kademlia, the node is the one provider of the
    file's and the directory's UnixFS CIDs (the ones it printed for Helia), and findPeer over the
    network gave the node's WebTransport addresses, certhashes included."""
    dht = out["dht"]
    assert dht["ok"] == "true", (dht, out["logs"][-30:])
    provided, _, peer = printed["dht"].removeprefix("provider of ").rpartition(": ")
    assert provided.split(" and ") == [printed["the"].split()[-1], printed["a"].split()[-1]]
    assert dht["found"]["providers"] == {"file": [peer], "directory": [peer]}, dht
    assert dht["found"]["peer"]["id"] == peer, dht
    webtransport = [a for a in dht["found"]["peer"]["multiaddrs"] if "/webtransport" in a]
    assert webtransport and all("/certhash/" in a for a in webtransport), dht
    assert "GET_PROVIDERS sent to" in dht["log"] and "FIND_NODE sent to" in dht["log"], dht
    assert dht["progress"] == [3, 3], dht  # two findProviders and the findPeer


def check_video(out: dict[str, Any]) -> None:
    """The page's video section: MSE can play WebM VP8, frames were decoded, it played to the
    end, and the bytes Helia streamed in were the node's file."""
    video = out["video"]
    assert video["supported"] == "true", (
        f"this Chromium cannot play the demo's video: {video['support']} "
        "(MediaSource.isTypeSupported is false; a build without VP8 in WebM?)"
    )
    assert video["frames"] > 0, video
    assert video["ended"] is True and video["endedAttr"] == "true", video
    assert video["currentTime"] == pytest.approx(video["duration"], abs=0.1), video
    assert video["verified"] == "true", video
    # The bar's max is the size the node announced; its value what Helia delivered.
    assert video["progress"][0] == video["progress"][1] > 0, video


async def video_plays_to_the_end(engine: str, browser: str) -> dict[str, Any]:
    """The demo's WebM (demo/dist/video.webm, made by ffmpeg at build time), imported as UnixFS
    by a served host with Bitswap, streamed by the page's Helia into Media Source Extensions
    (usecases.js ``heliaVideo``): frames decoded, played to the end, the bytes the node's."""
    require_demo_bundle()
    require_demo_video()
    data = VIDEO.read_bytes()
    store = BlockStore()
    root = import_file(data, store)
    async with served_host(engine) as served, running_bitswap(served.host, store):
        steps = [
            {"op": "startHelia"},
            {"op": "dial", "addr": served.webtransport_addr},
            {"op": "heliaVideo", "cid": str(root.cid), "timeoutMs": 40000},
        ]
        report = await run_usecases(steps, timeout=60, browser=browser)
    video = report.ok_step("heliaVideo")  # fails with the page's isTypeSupported message if so
    assert video["totalVideoFrames"] > 0, video
    assert video["ended"] is True, video
    assert video["currentTime"] == pytest.approx(video["duration"], abs=0.1), video
    assert (video["bytes"], video["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert (video["videoWidth"], video["videoHeight"]) == (640, 360), video
    print(
        f"\nvideo in {browser} ({engine}): {video['bytes'] / 2**20:.2f} MiB over Bitswap in "
        f"{video['arrivedMs']:.0f} ms, playing after {video['bytesWhenPlaying']} bytes; "
        f"{video['totalVideoFrames']} frames decoded ({video['droppedVideoFrames']} dropped), "
        f"ended at {video['currentTime']:.2f} s"
    )
    return video
