"""Stateless reset seen by headless Chromium (js-libp2p over WebTransport): the node it is
connected to crashes (a ``serve`` process, SIGKILL) and comes back on the same port with the
same key; the page's connection fails at once, closed by a stateless reset (Chromium's net-log
says "Received stateless reset."), well under the QUIC idle timeout.

Chromium also gives up on a connection when its packets meet a closed port (ICMP port
unreachable), so the port must never be closed in between: the test holds it with a plain
socket that answers nothing from the crash until the node (in this process, the same key) takes
it over (``hand_over``). Without that, Chromium fails on the ICMP error, reset or not.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio
from support.browser_checks import net_log_events
from support.browser_harness import run_browser
from support.node_process import Signal, crash, start_node
from support.wt_helpers import packaged_host

from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.cli.deploy import load_or_create_key
from py_libp2p_webtransport.endpoint import pump

pytestmark = pytest.mark.browser
IDLE_TIMEOUT_MS = 30_000  # the node's idle timeout (the default)


def hand_over(monkeypatch: pytest.MonkeyPatch, holder: socket.socket) -> None:
    """Close ``holder`` only when the endpoint opens its socket on the port (microseconds later;
    building and starting the host in between takes long enough for Chromium to send)."""
    original = pump.open_socket

    def open_socket(*args: Any, **kwargs: Any) -> socket.socket:
        holder.close()
        return original(*args, **kwargs)

    monkeypatch.setattr(pump, "open_socket", open_socket)


async def test_page_sees_the_connection_fail_after_a_restart(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "node.key"
    net_log = tmp_path / "netlog.json"
    signal = Signal()
    report = None
    with trio.fail_after(150):
        node, addr = await start_node(key_file, engine)
        try:
            port = wt_multiaddr.parse_webtransport_multiaddr(addr).port
            async with trio.open_nursery() as nursery:
                await nursery.start(signal.serve)
                plan = [
                    {"op": "dial", "addr": str(addr)},
                    {"op": "ping", "count": 2},
                    {"op": "waitSignal", "url": signal.url, "timeoutMs": 60_000},
                    # The ping's packets reach the new node, which answers with a reset.
                    {"op": "ping", "count": 1, "continueOnError": True},
                    {"op": "waitClosed", "timeoutMs": IDLE_TIMEOUT_MS // 3},
                ]

                async def browse() -> None:
                    nonlocal report
                    args = ["--net-log", str(net_log)]
                    report = await run_browser("chromium", plan, timeout=120, runner_args=args)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(browse)
                await signal.asked.wait()  # the page is connected and waiting
                await crash(node)
                holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                holder.bind(("127.0.0.1", port))  # silent: no ICMP while the node is down
                key_pair = load_or_create_key(key_file)
                listen = (f"/ip4/127.0.0.1/udp/{port}/quic-v1/webtransport",)
                hand_over(monkeypatch, holder)
                async with packaged_host(engine, key_pair=key_pair, listen=listen) as again:
                    assert [str(a) for a in again.get_addrs()] == [str(addr)]
                    signal.go()
                    await trio.sleep_forever()  # until the page's run ends (browse cancels)
        finally:
            await crash(node)
    assert report is not None
    report.ok_step("ping")
    closed = report.step("waitClosed")
    assert closed.get("closed") is True, report.describe()
    events = net_log_events(net_log)
    closes = [params for name, params in events if name == "QUIC_SESSION_CLOSED"]
    # Chromium's words for it: "Received stateless reset." (QUIC_PUBLIC_RESET), from the peer.
    assert any(
        "stateless reset" in str(close.get("details", "")).lower() and close.get("from_peer")
        for close in closes
    ), closes
