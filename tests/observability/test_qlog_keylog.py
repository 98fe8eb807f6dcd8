"""qlog and key logs on demand, over real py-libp2p hosts on loopback UDP, both engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.peerinfo import PeerInfo
from support.wt_helpers import read_to_end, wt_addrs, wt_host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.engine.qlog import RS

SECRET_LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
}


async def echo_once(engine: str, payload: bytes, **config: Any) -> None:
    """Two hosts, one connection, one echo of ``payload``, then both close."""
    with trio.fail_after(60):
        async with wt_host(engine, **config) as server, wt_host(engine, **config) as client:
            await client.connect(PeerInfo(server.get_id(), wt_addrs(server)))
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            await stream.write(payload)
            await stream.close_write()
            assert await read_to_end(stream) == payload
            await client.disconnect(server.get_id())


def read_sqlog(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-SEQ file (RFC 7464: each is RS, JSON, LF)."""
    text = path.read_text()
    assert text.startswith(RS)
    return [json.loads(record) for record in text.split(RS)[1:]]


async def test_qlog_dir_writes_one_sqlog_per_connection_end(engine: str, tmp_path: Path) -> None:
    qlog_dir = tmp_path / "qlog"  # created on demand
    await echo_once(engine, b"q" * 50_000, qlog_dir=str(qlog_dir))
    files = sorted(qlog_dir.iterdir())
    # One connection: the client's trace and the server's, named by the same ODCID.
    assert [f.name.rsplit("_", 1)[1] for f in files] == ["client.sqlog", "server.sqlog"]
    assert files[0].name.split("_")[0] == files[1].name.split("_")[0]
    for path, role in zip(files, ("client", "server"), strict=True):
        header, *events = read_sqlog(path)
        assert header["qlog_format"] == "JSON-SEQ" and header["qlog_version"] == "0.3"
        assert header["trace"]["vantage_point"] == {"name": engine, "type": role}
        names = {event["name"] for event in events}
        assert {"transport:packet_sent", "transport:packet_received"} <= names
        # qh3's native core logs packets without their frames: count the bytes on the wire.
        sent = sum(
            event["data"]["raw"]["length"]
            for event in events
            if event["name"] == "transport:packet_sent"
        )
        assert sent >= 50_000  # the echo went both ways: each side sent the payload
        # Milliseconds since the trace began, in order.
        assert header["trace"]["common_fields"]["time_format"] == "relative"
        times = [event["time"] for event in events]
        assert times == sorted(times) and 0 <= times[0] and times[-1] < 60_000


async def test_qlogdir_environment_variable(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QLOGDIR", str(tmp_path))
    await echo_once(engine, b"e" * 1000)
    assert sorted(f.name.rsplit("_", 1)[1] for f in tmp_path.iterdir()) == [
        "client.sqlog",
        "server.sqlog",
    ]


def test_the_config_field_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QLOGDIR", "from-env")
    monkeypatch.setenv("SSLKEYLOGFILE", "env.keys")
    assert WebTransportConfig().engine_config(is_client=True).qlog_dir == "from-env"
    assert WebTransportConfig().engine_config(is_client=True).keylog_file == "env.keys"
    config = WebTransportConfig(qlog_dir="mine", keylog_file="mine.keys")
    assert config.engine_config(is_client=True).qlog_dir == "mine"
    assert config.engine_config(is_client=True).keylog_file == "mine.keys"
    monkeypatch.delenv("QLOGDIR")
    monkeypatch.delenv("SSLKEYLOGFILE")
    assert WebTransportConfig().engine_config(is_client=True).qlog_dir is None
    assert WebTransportConfig().engine_config(is_client=True).keylog_file is None


def read_keylog(path: Path) -> dict[str, set[str]]:
    """{client random: labels} of an NSS key log."""
    randoms: dict[str, set[str]] = {}
    for line in path.read_text().splitlines():
        label, client_random, secret = line.split(" ")
        assert len(client_random) == 64 and len(secret) in (64, 96)  # SHA-256/384 secrets
        randoms.setdefault(client_random, set()).add(label)
    return randoms


async def test_keylog_file_has_both_ends_secrets(engine: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.log"
    await echo_once(engine, b"k" * 1000, keylog_file=str(keys))
    # One TLS handshake; each end logs its four secrets under the same client random.
    (labels,) = read_keylog(keys).values()
    assert labels == SECRET_LABELS
    assert len(keys.read_text().splitlines()) == 8


async def test_sslkeylogfile_environment_variable(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "env-keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keys))
    await echo_once(engine, b"s" * 1000)
    (labels,) = read_keylog(keys).values()
    assert labels == SECRET_LABELS
