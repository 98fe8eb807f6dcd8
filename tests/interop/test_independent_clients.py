"""Our server against independent WebTransport clients (issue 3, item 4: "Independent clients").

The server is ``session.WebTransportH3`` over ``endpoint.Endpoint`` (``wt_echo_server.py`` here)
on each available QUIC engine. The clients are not ours: pywebtransport 0.21.1 (draft-15/16) and
webtransport-py 2026.1.0.dev0 (Safari-like SETTINGS), each run from its own Python >= 3.12 venv
(scripts/setup-interop-clients.sh) as a subprocess that prints one JSON line.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pytest
import trio
from wt_echo_server import EchoServer, run_echo_server

from py_libp2p_webtransport.constants import Setting
from py_libp2p_webtransport.session import H3Config
from py_libp2p_webtransport.session import http3 as http3_module
from py_libp2p_webtransport.session.settings import server_settings

if TYPE_CHECKING:  # the fixtures come from this directory's conftest.py
    from conftest import ClientRunner

pytestmark = pytest.mark.interop

# What each client puts on the wire (observed by our server with these exact versions).
EXPECTED_PROTOCOL = {"pywebtransport": "webtransport-h3", "webtransport-py": "webtransport"}
# SETTINGS each client must send for our server to treat it as a WebTransport peer, per client.
EXPECTED_CLIENT_SETTINGS = {
    "pywebtransport": {int(Setting.WT_ENABLED): 1, int(Setting.H3_DATAGRAM): 1},
    "webtransport-py": {
        int(Setting.WT_MAX_SESSIONS): 1,
        0xC671706A: 1,
        int(Setting.H3_DATAGRAM): 1,
    },
}
# webtransport-py 2026.1.0.dev0 cannot write more than ~one congestion window at once (it spins):
# its program refuses larger echoes, so it gets smaller sizes.
ECHO_SIZES = {"pywebtransport": (1, 10_000, 1 << 20), "webtransport-py": (1, 10_000)}
SERVER_PAYLOAD = 3_000


def _only_connection(server: EchoServer):  # type: ignore[no-untyped-def]
    assert len(server.records) == 1, f"expected one QUIC connection, saw {len(server.records)}"
    return server.records[0]


async def test_session_accepted_and_bidi_streams_both_ways(
    any_client: ClientRunner, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    payload = os.urandom(SERVER_PAYLOAD)
    config = H3Config()
    sizes = ECHO_SIZES[any_client.name]
    async with run_echo_server(engine, config, server_payloads=[payload]) as server:
        run = await any_client.run(server.url(), echo_bidi=sizes, accept_bidi=1)
        assert run["ok"], run.describe()
        assert run["status"] == 200
        assert run["connected"]
        assert [e["sent"] for e in run["echoes"]] == list(sizes)
        assert all(e["match"] for e in run["echoes"]), run.describe()
        assert run["accepted"] == [
            {
                "stream_id": run["accepted"][0]["stream_id"],
                "received": len(payload),
                "echoed": len(payload),
            }
        ]

        rec = _only_connection(server)
        await server.wait_for(
            lambda: all(s.finished for s in rec.server_streams.values()),
            "the client's echo of the server-opened stream",
            timeout=5,
        )
        # Server side: the CONNECT as the client sent it.
        assert len(rec.requests) == 1
        request = rec.requests[0]
        assert request.protocol == EXPECTED_PROTOCOL[any_client.name]
        assert request.path == "/.well-known/libp2p-webtransport?type=noise"
        assert rec.established == [request.session_id]
        # Client-opened streams: every byte and the FIN reached the server (and were echoed).
        assert sorted(rec.client_streams.values()) == sorted(sizes)
        assert rec.client_fins == set(rec.client_streams)
        # The server-opened stream came back intact, FIN included, on the stream id the client saw.
        (stream,) = rec.server_streams.values()
        assert stream.finished and stream.reset_code is None
        assert bytes(stream.received) == payload
        assert run["accepted"][0]["stream_id"] == stream.stream_id
        # SETTINGS the client sent, as our session layer decoded them.
        settings = rec.peer_settings
        assert settings is not None
        for key, value in EXPECTED_CLIENT_SETTINGS[any_client.name].items():
            assert settings.get(key) == value, f"client SETTINGS 0x{key:x}: {settings}"
        # Both clients end by closing their session: our server must see a clean remote close
        # (and must not have failed in its handler while ending the session's streams).
        await server.wait_for(lambda: bool(rec.session_closed), "the client's session close", 5)
        closed = rec.session_closed[0]
        assert (closed.session_id, closed.error_code, closed.remote) == (
            request.session_id,
            0,
            True,
        )
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_webtransport_py_decodes_our_settings_exactly(
    webtransport_py_client: ClientRunner, engine: str
) -> None:
    """webtransport-py's program parses the server's SETTINGS from the raw control stream: they
    must be exactly what ``server_settings`` says we send (GREASE included)."""
    config = H3Config()
    async with run_echo_server(engine, config) as server:
        run = await webtransport_py_client.run(server.url())
    assert run["ok"], run.describe()
    expected = {hex(k): v for k, v in server_settings(config).items()}
    assert run["observed"]["server_settings"] == expected
    client_sent = run["observed"]["client_settings"]
    rec = _only_connection(server)
    assert {hex(k): v for k, v in (rec.peer_settings or {}).items()} == client_sent


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/somewhere-else?type=noise", 404),
        ("/.well-known/libp2p-webtransport", 400),
        ("/.well-known/libp2p-webtransport?type=other", 400),
    ],
)
async def test_rejections_reach_the_client_with_their_status(
    any_client: ClientRunner, engine: str, path: str, status: int
) -> None:
    async with run_echo_server(engine) as server:
        run = await any_client.run(server.url(path), expect_status=status)
        assert run["ok"], run.describe()
        assert run["status"] == status
        assert not run["connected"]
        rec = _only_connection(server)
        # The session layer answered on its own: the application never saw a request.
        assert rec.requests == [] and rec.established == []


def _drop_server_setting(monkeypatch: pytest.MonkeyPatch, setting: int) -> None:
    """Make our server leave ``setting`` out of its SETTINGS (test-only: wraps the function the
    HTTP/3 layer calls; ``raising=True`` fails the test if that name ever moves)."""
    original = server_settings

    def without(config: H3Config) -> dict[int, int]:
        return {k: v for k, v in original(config).items() if k != setting}

    monkeypatch.setattr(http3_module, "server_settings", without, raising=True)


async def test_pywebtransport_refuses_a_server_without_wt_enabled(
    pywebtransport_client: ClientRunner, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drop_server_setting(monkeypatch, int(Setting.WT_ENABLED))  # 0x2c7cf000
    async with run_echo_server(engine) as server:
        run = await pywebtransport_client.run(server.url(), echo_bidi=(10,), timeout=5)
        assert not run["ok"]
        assert not run["connected"] and run["status"] is None
        assert run["phase"] == "connect"
        # The library's own account: it checked our SETTINGS for WT_ENABLED.
        assert any("expected=wt_enabled" in line for line in run["observed"].get("trace", [])), (
            run.describe()
        )
        rec = _only_connection(server)
        assert rec.requests == []  # no CONNECT was sent


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param(int(Setting.WT_MAX_SESSIONS), id="WT_MAX_SESSIONS-0x14e9cd29"),
        pytest.param(int(Setting.ENABLE_CONNECT_PROTOCOL), id="ENABLE_CONNECT_PROTOCOL-0x8"),
        pytest.param(int(Setting.H3_DATAGRAM), id="H3_DATAGRAM-0x33"),
    ],
)
async def test_webtransport_py_refuses_a_server_without_a_setting_it_needs(
    webtransport_py_client: ClientRunner,
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
    setting: int,
) -> None:
    """webtransport-py needs 0x14e9cd29 (like Safari), and also 0x08 and 0x33, from the server."""
    _drop_server_setting(monkeypatch, setting)
    async with run_echo_server(engine) as server:
        run = await webtransport_py_client.run(server.url(), echo_bidi=(10,), timeout=5)
        assert not run["ok"]
        assert not run["connected"] and run["status"] is None
        assert "refused to send CONNECT" in (run["error"] or ""), run.describe()
        seen = run["observed"]["server_settings"]
        assert hex(setting) not in seen
        assert seen.get(hex(Setting.WT_ENABLED)) == 1  # only the one codepoint is missing
        rec = _only_connection(server)
        assert rec.requests == []


async def test_both_drafts_on_one_listener(
    pywebtransport_client: ClientRunner, webtransport_py_client: ClientRunner, engine: str
) -> None:
    """A draft-15/16 client and a Safari-like client at the same time on one UDP port."""
    runs = {}
    async with run_echo_server(engine) as server:

        async def go(client: ClientRunner) -> None:
            runs[client.name] = await client.run(server.url(), echo_bidi=(5_000,))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(go, pywebtransport_client)
            nursery.start_soon(go, webtransport_py_client)
        for run in runs.values():
            assert run["ok"], run.describe()
        assert len(server.records) == 2
        protocols = sorted(r.requests[0].protocol for r in server.records if r.requests)
        assert protocols == ["webtransport", "webtransport-h3"]
