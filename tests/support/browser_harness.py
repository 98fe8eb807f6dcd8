"""Helpers for the browser suite: a real headless browser running js-libp2p (tests/browser/run.mjs)
dials a real py-libp2p host that uses our transport, in this process.

Without Chromium, Node or the built bundle these tests skip with a message naming the missing
piece; when the ``CI`` environment variable is set they fail instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.stream.net_stream import INetStream
from multiaddr import Multiaddr

BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"  # run.mjs, the page, node_modules
RUNNER = BROWSER_DIR / "run.mjs"
BUNDLE = BROWSER_DIR / "dist" / "page.js"
BROWSER_BINARIES = {"chromium": "chromium", "firefox": "firefox-esr"}


def missing_browser_piece(browser: str) -> str | None:
    """Name what is missing to run ``browser`` tests, or None when everything is there."""
    if shutil.which("node") is None:
        return "node (Node.js 20+) is not installed"
    if shutil.which(BROWSER_BINARIES[browser]) is None:
        name = BROWSER_BINARIES[browser]
        return f"{name} is not installed (apt-get install {name})"
    if not (BROWSER_DIR / "node_modules").is_dir():
        return "tests/browser/node_modules is missing (cd tests/browser && npm ci)"
    if not BUNDLE.is_file():
        return "tests/browser/dist/page.js is missing (cd tests/browser && npm run build)"
    return None


def require_browser(browser: str) -> None:
    missing = missing_browser_piece(browser)
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI, but {missing}")
    pytest.skip(missing)


@dataclass
class BrowserReport:
    """What run.mjs printed: the page's report, the browser's console, and the runner's verdict."""

    raw: dict[str, Any]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.raw.get("report", {}).get("steps", []))

    def step(self, op: str, index: int = 0) -> dict[str, Any]:
        matching = [s for s in self.steps if s["op"] == op]
        assert len(matching) > index, f"no step {op!r} #{index} in report:\n{self.describe()}"
        return matching[index]

    def ok_step(self, op: str, index: int = 0) -> dict[str, Any]:
        step = self.step(op, index)
        assert step["ok"], (
            f"browser step {op} failed: {step.get('error')}\n{self.describe()}\n"
            f"server side:\n{describe_served_hosts()}"
        )
        return step

    def describe(self) -> str:
        """Everything useful for a failure message, Chromium's own net::ERR_ text included."""
        logs = "\n".join(self.raw.get("logs", [])[-40:])
        error = self.raw.get("error") or self.raw.get("report", {}).get("error")
        steps = json.dumps(self.steps, indent=1)[:4000]
        return f"runner error: {error}\nsteps: {steps}\nbrowser log (tail):\n{logs}"


async def run_browser(
    browser: str,
    steps: list[dict[str, Any]],
    timeout: float = 90,
    runner_args: list[str] | None = None,
) -> BrowserReport:
    """Run a plan in a fresh headless ``browser``; bounded by ``timeout`` seconds.

    ``runner_args`` go to run.mjs (e.g. ``["--moz-log", "nsHttp:5"]``, ``["--net-log", path]``).
    """
    require_browser(browser)
    plan = json.dumps({"steps": steps})
    cmd = ["node", str(RUNNER), "--browser", browser, "--plan", plan, "--timeout", str(timeout)]
    cmd += runner_args or []
    with trio.fail_after(timeout + 30):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    out = proc.stdout.decode().strip().splitlines()
    assert out, f"runner printed nothing (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}"
    report = BrowserReport(json.loads(out[-1]))
    assert report.raw.get("ok"), (
        f"browser run failed:\n{report.describe()}\nserver side:\n{describe_served_hosts()}"
    )
    return report


StreamHandler = Callable[[INetStream], Awaitable[None]]


@dataclass
class ServedHost:
    """A py-libp2p host with our transport, listening on loopback."""

    host: Any
    addrs: list[str]

    @property
    def webtransport_addr(self) -> str:
        return next(a for a in self.addrs if "/webtransport/" in a)


# Hosts inside `served_host`, so a failed browser run can say what the server saw.
_SERVING: list[ServedHost] = []


def describe_served_hosts() -> str:
    """Each served connection's QUIC state and its streams' buffered bytes (for failure messages).

    A stalled transfer in CI is only debuggable with cwnd, bytes in flight, losses and who holds
    unread data at the moment it failed: ``WebTransportConnection.describe()`` has all of it.
    """
    lines = []
    for served in _SERVING:
        for net_conn in served.host.get_network().get_connections():
            muxed = getattr(net_conn, "muxed_conn", None)
            describe = getattr(muxed, "describe", None)
            lines.append(describe() if describe is not None else f"{net_conn!r}: not ours")
    return "\n".join(lines) or "(no connection)"


async def echo_handler(stream: INetStream) -> None:
    """/echo/1.0.0: send back everything until EOF, then close."""
    with contextlib.suppress(StreamEOF):  # the browser's FIN
        while True:
            await stream.write(await stream.read(1 << 16))
    await stream.close()


@asynccontextmanager
async def served_host(
    engine: str,
    handlers: dict[str, StreamHandler] | None = None,
    key_pair: Any = None,
    listen: str = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
    **config: Any,
) -> AsyncIterator[ServedHost]:
    """Run a host with our transport (the given engine) plus ping, identify, echo and perf.

    ``config``: further ``WebTransportConfig`` fields (e.g. ``retry="always"``).
    """
    from py_libp2p_webtransport.apps.identify import install_identify
    from py_libp2p_webtransport.apps.perf import perf_handler
    from py_libp2p_webtransport.config import WebTransportConfig
    from py_libp2p_webtransport.transport import WebTransportTransport

    kp = key_pair or create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine, **config))
    host = new_host(key_pair=kp, transports=[transport], listen_addrs=[Multiaddr(listen)])
    async with host.run(listen_addrs=[Multiaddr(listen)]):
        host.set_stream_handler(TProtocol("/echo/1.0.0"), echo_handler)
        host.set_stream_handler(TProtocol("/perf/1.0.0"), perf_handler)
        install_identify(host)  # as `serve` does
        for proto, handler in (handlers or {}).items():
            host.set_stream_handler(TProtocol(proto), handler)
        addrs = [str(a) for a in host.get_addrs()]
        served = ServedHost(host=host, addrs=addrs)
        _SERVING.append(served)
        try:
            yield served
        finally:
            _SERVING.remove(served)
