"""``serve`` for deployment (``cli/deploy.py``): a persistent identity by default, ``--listen``
and ``--announce``, the certhash schedule, and clear errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.wt_helpers import packaged_host, wt_host

from py_libp2p_webtransport.certs import CertManager
from py_libp2p_webtransport.cli.deploy import listen_addrs_from_args, load_or_create_key
from py_libp2p_webtransport.cli.main import build_parser, main
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.multiaddr import multihash_to_text, parse_webtransport_multiaddr

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400.0


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", *args]
    env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def schedule(key_file: Path, days: int = 60) -> dict[str, Any]:
    out = run_cli("serve", "--print-certhashes", "--days", str(days), "--key-file", str(key_file))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def period_at(printed: dict[str, Any], when: float) -> dict[str, Any]:
    (period,) = [p for p in printed["periods"] if p["from_unix"] <= when < p["until_unix"]]
    return dict(period)


async def test_printed_pair_for_a_future_date_is_what_a_listener_then_advertises(
    engine: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "node.key"
    started = time.time()
    printed = schedule(key_file, days=60)
    key_pair = load_or_create_key(key_file)
    assert printed["peer_id"] == str(ID.from_pubkey(key_pair.public_key))
    periods = printed["periods"]
    # Contiguous periods that cover the next 60 days; consecutive pairs share a certificate.
    assert periods[0]["from_unix"] <= started and periods[-1]["until_unix"] > started + 60 * DAY
    for a, b in zip(periods, periods[1:], strict=False):
        assert a["until_unix"] == b["from_unix"] and a["certhashes"][1] == b["certhashes"][0]
    assert len(periods) in (5, 6)  # a new pair every 14 days minus 2 hours

    when = started + 40 * DAY
    with trio.fail_after(30):
        async with wt_host(engine, key_pair=key_pair, clock=lambda: when) as listener:
            (addr,) = listener.get_transport_addrs()
    advertised = [multihash_to_text(h) for h in parse_webtransport_multiaddr(addr).certhashes]
    assert advertised == period_at(printed, when)["certhashes"]
    # Every period, at its middle, is what the listener's certificate manager says then.
    for period in periods:
        middle = (period["from_unix"] + period["until_unix"]) / 2
        manager = CertManager(key_pair.private_key, clock=lambda m=middle: m)
        assert [multihash_to_text(h) for h in manager.advertised_certhashes()] == (
            period["certhashes"]
        )


def test_default_identity_is_persistent_with_mode_600(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    first = run_cli("serve", "--print-certhashes", "--days", "1", env=env)
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "config" / "py-libp2p-webtransport" / "node.key"
    assert (key_file.stat().st_mode & 0o777) == 0o600
    second = run_cli("serve", "--print-certhashes", "--days", "1", env=env)
    assert json.loads(first.stdout)["peer_id"] == json.loads(second.stdout)["peer_id"]
    assert json.loads(first.stdout)["periods"] == json.loads(second.stdout)["periods"]
    # --ephemeral writes nothing and is a different identity each time.
    eph = run_cli("serve", "--ephemeral", "--print-certhashes", "--days", "1", env=env)
    assert json.loads(eph.stdout)["peer_id"] != json.loads(first.stdout)["peer_id"]


def test_unsafe_or_unreadable_key_files_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "node.key"
    load_or_create_key(key_file)
    key_file.chmod(0o644)
    out = run_cli("serve", "--key-file", str(key_file))
    assert out.returncode == 2
    assert "mode 0644" in out.stderr and f"chmod 600 {key_file}" in out.stderr
    assert "Traceback" not in out.stderr

    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    folder = tmp_path / "folder.key"
    folder.mkdir(mode=0o700)
    for path, why in ((garbage, "does not hold a libp2p private key"), (folder, "cannot read")):
        out = run_cli("serve", "--key-file", str(path))
        assert out.returncode == 2 and why in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--announce", "node.example.com:443"], "starting with '/'"),
        (["--announce", "/dns4/node.example.com/udp/443/webtransport"], "not a WebTransport"),
        (["--announce", "/ip4/203.0.113.9"], "needs /tcp/PORT or /udp/PORT"),
        (["--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct"], "nor /ip4|ip6/HOST/tcp/PORT"),
        (["--listen", "/ip4/127.0.0.1/udp/0/quic"], "draft-29"),
        (["--listen", "/dns4/node.example.com/udp/443/quic-v1"], "an IP address"),
        (["--listen", "/dns4/node.example.com/udp/443/quic-v1/webtransport"], "an IP address"),
        (["--listen", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport", "--port", "4001"], "one or"),
        (["--ephemeral", "--key-file", "x.key"], "exclude each other"),
        (["--print-certhashes", "--days", "0"], "--days must be at least 1"),
    ],
)
def test_bad_deployment_input_gets_a_clear_error(
    args: list[str], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "--ephemeral" not in args:
        args = [*args, "--key-file", str(tmp_path / "node.key")]
    assert main(["serve", *args]) == 2
    assert why in capsys.readouterr().err


def test_listen_accepts_every_interface_without_binding() -> None:
    """0.0.0.0 and :: are accepted (this test binds nothing: tests stay on loopback)."""
    listen = [
        "/ip4/0.0.0.0/udp/4001/quic-v1/webtransport",
        "/ip6/::/udp/4001/quic-v1/webtransport",
        "/ip4/0.0.0.0/udp/4001/quic-v1",
        "/ip4/0.0.0.0/tcp/4001",
    ]
    args = build_parser().parse_args(["serve", *sum((["--listen", a] for a in listen), [])])
    assert [str(a) for a in listen_addrs_from_args(args)] == listen
    bare = build_parser().parse_args(["serve"])
    # Without --listen: WebTransport and QUIC on one UDP socket.
    assert [str(a) for a in listen_addrs_from_args(bare)] == [
        "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
        "/ip4/127.0.0.1/udp/0/quic-v1",
    ]


async def _serve(*args: str, count: int = 1) -> tuple[trio.Process, list[str]]:
    """Start ``serve`` and read its first ``count`` address lines (unbuffered: they may come
    in several chunks)."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    buf = b""
    while buf.count(b"\n") < count:
        chunk = await proc.stdout.receive_some(4096)
        assert chunk, "serve exited before printing its addresses"
        buf += chunk
    return proc, buf.decode().split()


async def _stop(proc: trio.Process) -> list[str]:
    """SIGTERM; the clean exit status is checked; returns what else it printed."""
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    rest = b""
    with trio.fail_after(15):
        while chunk := await proc.stdout.receive_some(4096):
            rest += chunk
        assert await proc.wait() == 0
    return rest.decode().split()


async def test_serve_listens_on_every_listen_address(engine: str, tmp_path: Path) -> None:
    key = ["--key-file", str(tmp_path / "node.key"), "--engine", engine]
    listen = ["--listen", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"]
    listen += ["--listen", "/ip4/127.0.0.1/tcp/0"]
    with trio.fail_after(60):
        proc, lines = await _serve(*key, *listen, count=2)
        try:
            (wt,) = [a for a in lines if "/webtransport/certhash/" in a]
            (tcp,) = [a for a in lines if "/tcp/" in a]
            for addr in (wt, tcp):
                async with packaged_host(engine) as client:
                    peer = ID.from_base58(addr.rsplit("/p2p/", 1)[1])
                    await client.connect(PeerInfo(peer, [Multiaddr(addr)]))
                    conns = client.get_network().get_connections(peer)
                    ours = [isinstance(c.muxed_conn, WebTransportConnection) for c in conns]
                    assert ours == [addr == wt]
        finally:
            lines += await _stop(proc)
    assert len(lines) == 2, lines  # exactly one address per listen address


async def test_serve_announces_a_dns_name_with_todays_certhashes(
    engine: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "node.key"
    printed = schedule(key_file, days=1)
    announce = "/dns4/node.example.com/udp/443/quic-v1/webtransport"
    with trio.fail_after(60):
        proc, lines = await _serve(
            "--key-file", str(key_file), "--engine", engine, "--announce", announce
        )
        now = time.time()
        lines += await _stop(proc)
    expected = f"{announce}{period_at(printed, now)['suffix']}/p2p/{printed['peer_id']}"
    assert lines == [expected]  # the announced address only, with today's pair
