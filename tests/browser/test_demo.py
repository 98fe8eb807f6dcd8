"""``py-libp2p-webtransport serve --demo`` as a person would run it: the CLI in a subprocess, the
page opened in headless Chromium and clicked through (chat, fetch, Helia fetch and listing,
upload); the screenshot is kept under artifacts/ (git-ignored) and its path printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from support.usecases_harness import DEMO_DIR, require_demo_bundle

from py_libp2p_webtransport.cli.demo import DEMO_DIRECTORY

pytestmark = pytest.mark.browser
BROWSER = "chromium"
ROOT = DEMO_DIR.parent
ARTIFACTS = ROOT / "artifacts"


async def _read_demo_url(proc: trio.Process) -> str:
    """The URL ``serve --demo`` prints (bounded by the caller)."""
    assert proc.stdout is not None
    seen = b""
    while b"\n" not in seen.split(b"demo: open ", 1)[-1] or b"demo: open " not in seen:
        chunk = await proc.stdout.receive_some(4096)
        assert chunk, f"serve --demo exited early:\n{seen.decode()}"
        seen += chunk
    line = seen.split(b"demo: open ", 1)[1].split(b"\n", 1)[0].decode()
    return line.split()[0]


async def test_demo_page_click_through() -> None:
    require_demo_bundle()
    if not (DEMO_DIR / "dist" / "demo.js").is_file():
        pytest.skip("demo/dist/demo.js is missing (cd demo && npm run build)")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo.png"
    shot.unlink(missing_ok=True)
    # --ephemeral: a test must not create the user's persistent identity.
    cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", "--demo", "--ephemeral"]
    proc = await trio.lowlevel.open_process(cmd, cwd=ROOT, stdout=subprocess.PIPE)
    try:
        with trio.fail_after(60):
            url = await _read_demo_url(proc)
        e2e = ["node", str(DEMO_DIR / "e2e.mjs"), "--url", url, "--screenshot", str(shot)]
        with trio.fail_after(150):
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
    out = json.loads(lines[-1])
    assert out["ok"], f"demo click-through failed at {out.get('step')}: {out.get('error')}\n" + (
        "\n".join(out["logs"][-30:])
    )
    assert out["state"] == "connected"
    assert "me: hello from the browser test" in out["chat"]
    assert "python node got: hello from the browser test" in out["chat"]
    assert out["fetch"]["verified"] == "true", out["fetch"]
    assert out["fetchProgress"][0] == out["fetchProgress"][1] == 10 * 1024 * 1024
    assert out["helia"]["verified"] == "true", (out["helia"], out["logs"][-30:])
    assert out["helia"]["progress"][0] == out["helia"]["progress"][1] == 10 * 1024 * 1024
    assert out["helia"]["names"] == sorted({name.split("/")[0] for name in DEMO_DIRECTORY})
    assert out["upload"]["verified"] == "true", (out["upload"], out["logs"][-30:])
    assert Path(out["screenshot"]).stat().st_size > 0
    print(f"demo screenshot: {shot.relative_to(ROOT)}")
    print(f"demo fetch: {out['fetch']['text']}\ndemo upload: {out['upload']['text']}")
    print(f"demo Helia fetch: {out['helia']['text']}")
