"""Run the use-case page (demo/, built with ``npm ci && npm run build`` there) in headless
Chromium (or Firefox ESR) through tests/browser/run.mjs, next to a served host with gossip and
the file protocols.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from support.browser_harness import RUNNER, BrowserReport, require_browser

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
USECASES_BUNDLE = DEMO_DIR / "dist" / "usecases.js"


def require_demo_bundle(bundle: str = "dist/usecases.js") -> None:
    """Skip (fail under CI) when demo/ is not installed and built."""
    missing = None
    if not (DEMO_DIR / "node_modules").is_dir():
        missing = "demo/node_modules is missing (cd demo && npm ci)"
    elif not (DEMO_DIR / bundle).is_file():
        missing = f"demo/{bundle} is missing (cd demo && npm run build)"
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI, but {missing}")
    pytest.skip(missing)


async def run_usecases(
    steps: list[dict[str, Any]],
    timeout: float = 120,
    debug: str = "",
    browser: str = "chromium",
    bundle: str = "dist/usecases.js",
) -> BrowserReport:
    """Run a plan of use-case steps in a fresh headless ``browser`` (chromium or firefox);
    bounded by ``timeout``.

    ``debug`` names js-libp2p debug namespaces whose lines go into the report's logs;
    ``bundle`` is the page's script under demo/ (``dist/dht.js``: the DHT's steps).
    """
    require_browser(browser)
    require_demo_bundle(bundle)
    cmd = [
        "node", str(RUNNER), "--browser", browser, "--page", str(DEMO_DIR),
        "--bundle", bundle, "--plan", json.dumps({"steps": steps, "debug": debug}),
        "--timeout", str(timeout),
    ]  # fmt: skip
    with trio.fail_after(timeout + 30):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    out = proc.stdout.decode().strip().splitlines()
    assert out, f"runner printed nothing (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
    report = BrowserReport(json.loads(out[-1]))
    assert report.raw.get("ok"), f"browser run failed:\n{report.describe()}"
    return report
