"""Prometheus metrics after a real browser session: headless Chromium (js-libp2p) dials our
host, echoes bytes, exits; a scrape over HTTP shows the connection opened and closed and the
bytes."""

from __future__ import annotations

import pytest
import trio
from support.browser_checks import dial_step
from support.browser_harness import run_browser, served_host
from support.scrape import delta, metrics_server, scrape

from py_libp2p_webtransport.conn import WebTransportConnection

pytestmark = pytest.mark.browser
BROWSER = "chromium"
P = "py_libp2p_webtransport"
SIZE = 256 * 1024


async def test_scrape_after_a_browser_session(engine: str) -> None:
    with metrics_server() as url:
        before = await scrape(url)
        async with served_host(engine, metrics=True) as served:
            report = await run_browser(BROWSER, [dial_step(served), {"op": "echo", "bytes": SIZE}])
            assert report.ok_step("echo")["exact"]
            # The browser is gone; its connection ends (close or idle timeout): wait for it.
            with trio.fail_after(60):
                for net_conn in served.host.get_network().get_connections():
                    conn = net_conn.muxed_conn
                    assert isinstance(conn, WebTransportConnection)
                    await conn.closed_event.wait()
            after = await scrape(url)
    wt = {"transport": "webtransport", "direction": "inbound"}
    assert delta(before, after, f"{P}_connections_opened_total", **wt) == 1
    closed = [
        delta(before, after, f"{P}_connections_closed_total", **wt, reason=reason)
        for reason in ("local", "remote", "lost")
    ]
    assert sum(closed) == 1
    for phase in ("quic", "connect", "noise"):
        name = f"{P}_handshake_duration_seconds_count"
        assert delta(before, after, name, **wt, phase=phase) == 1
    assert delta(before, after, f"{P}_udp_received_bytes_total") >= SIZE
    assert delta(before, after, f"{P}_udp_sent_bytes_total") >= SIZE
    assert delta(before, after, f"{P}_streams_opened_total", **wt) >= 2  # Noise, echo
