"""A browser refused before the handshake (py-libp2p's connection gater denies its address) gets
a clear answer at once: QUIC CONNECTION_CLOSE(CONNECTION_REFUSED) with the reason, not silence
until its dial times out (Chromium's net-log shows the refusal)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from libp2p.network.config import ConnectionConfig
from support.browser_checks import net_log_events
from support.browser_harness import run_browser
from support.wt_helpers import LISTEN_V4, packaged_host, transport_of

pytestmark = pytest.mark.browser


async def test_a_gated_browser_is_refused_at_once(engine: str, tmp_path: Path) -> None:
    net_log = tmp_path / "netlog.json"
    gated = ConnectionConfig(deny_list=["127.0.0.0/8"])
    with trio.fail_after(120):
        async with packaged_host(engine, listen=(LISTEN_V4,), connection_config=gated) as server:
            (addr,) = [str(a) for a in server.get_addrs() if "webtransport" in str(a)]
            report = await run_browser(
                "chromium",
                [{"op": "dial", "addr": addr, "timeoutMs": 30_000}],
                timeout=90,
                runner_args=["--net-log", str(net_log)],
            )
            (endpoint,) = transport_of(server).endpoints()
            assert endpoint.stats.dropped_gated >= 1 and endpoint.stats.refusals_sent >= 1
            assert endpoint.stats.connections_accepted == 0
    dial = report.step("dial")
    assert dial["ok"] is False, report.describe()
    closes = [p for name, p in net_log_events(net_log) if name == "QUIC_SESSION_CLOSED"]
    assert any(
        "connection refused: address denied" in str(close.get("details", "")) for close in closes
    ), closes
