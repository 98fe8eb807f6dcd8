"""The ``perf`` command: argument parsing, and the real command in a subprocess against a real
server host running in this process."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from libp2p.abc import IHost
from multiaddr import Multiaddr

from py_libp2p_webtransport.apps.perf import PERF_PROTOCOL, PerfResult, perf_handler
from py_libp2p_webtransport.cli.perf import (
    _ProgressBar,
    add_perf_parser,
    build_host,
    format_table,
    parse_size,
    run_perf_command,
    transport_for_address,
)

OURS_MISSING = (
    ""
    if importlib.util.find_spec("py_libp2p_webtransport.transport")
    else "py_libp2p_webtransport.transport has not landed yet"
)

ROOT = Path(__file__).resolve().parents[2]
RESULT_KEYS = set(PerfResult(0, 0, 0, 0, None, 0, 0).as_dict())
RUN_KEYS = {"run", "runs", "transport", "engine", "address", "peer_id", "connect_seconds", "ok"}
RUN_KEYS |= {"error"} | RESULT_KEYS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("123", 123),
        ("1k", 1024),
        ("64MiB", 64 * 2**20),
        ("64mib", 64 * 2**20),
        ("1G", 2**30),
        ("1GB", 10**9),
        ("10MB", 10**7),
        ("1.5KiB", 1536),
        ("2T", 2 * 2**40),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "1.3", "12 parsecs", "MiB", "1e9", "0x10"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("/ip4/127.0.0.1/udp/1/quic-v1/webtransport", "webtransport"),
        (
            "/ip6/::1/udp/1/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
            "webtransport",
        ),
        ("/ip4/127.0.0.1/udp/1/quic-v1", "quic-v1"),
        ("/dns4/example.com/tcp/4001", "tcp"),
    ],
)
def test_transport_for_address(addr: str, expected: str) -> None:
    assert transport_for_address(Multiaddr(addr)) == expected


def test_transport_for_address_rejects_udp_alone() -> None:
    with pytest.raises(ValueError, match="no transport"):
        transport_for_address(Multiaddr("/ip4/127.0.0.1/udp/1"))


def test_subcommand_wiring() -> None:
    parser = argparse.ArgumentParser(prog="py-libp2p-webtransport")
    add_perf_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["perf", "/ip4/127.0.0.1/tcp/1", "--upload-bytes", "1k", "--runs", "3"]
    )
    assert args.func is run_perf_command
    assert (args.upload_bytes, args.download_bytes, args.runs) == (1024, 64 * 2**20, 3)
    assert args.transport == "auto"


def test_table_shows_failures_and_medians() -> None:
    good = {
        "run": 1,
        "ok": True,
        "error": None,
        **PerfResult(2**20, 0, 0.1, 0.5, None, 0.0, 0.5).as_dict(),
    }
    good2 = dict(good, run=2, upload_mb_per_s=4.0)
    bad = dict.fromkeys(RESULT_KEYS) | {"run": 3, "ok": False, "error": "TooSlow: x"}
    bad.update(upload_bytes=2**20, download_bytes=0)
    lines = format_table([good, good2, bad]).splitlines()
    assert len(lines) == 5  # header, 3 runs, median of the 2 good ones
    assert lines[3].split()[0] == "3" and lines[3].endswith("TooSlow: x")
    assert lines[4].split()[:2] == ["median", f"{(good['upload_mb_per_s'] + 4.0) / 2:.2f}"]


async def _cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(timeout):
        return await trio.run_process(
            [sys.executable, "-m", "py_libp2p_webtransport.cli.perf", *argv],
            cwd=ROOT,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )


SERVERS = [
    pytest.param("tcp", "/ip4/127.0.0.1/tcp/0", "auto", id="tcp"),
    pytest.param(
        "libp2p-webtransport",
        "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
        "libp2p-webtransport",
        id="libp2p-webtransport",
    ),
    pytest.param(
        "libp2p-webtransport",
        "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
        "auto",
        id="ours-to-libp2p-webtransport",
        marks=pytest.mark.skipif(bool(OURS_MISSING), reason=OURS_MISSING),
    ),
    pytest.param(
        "webtransport",
        "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
        "auto",
        id="ours",
        marks=pytest.mark.skipif(bool(OURS_MISSING), reason=OURS_MISSING),
    ),
]


@pytest.mark.parametrize(("server_kind", "listen", "client_transport"), SERVERS)
async def test_cli_json_runs_against_a_real_server(
    server_kind: str, listen: str, client_transport: str
) -> None:
    server: IHost = build_host(server_kind, listen_addrs=[Multiaddr(listen)])
    async with server.run(listen_addrs=[Multiaddr(listen)]):
        server.set_stream_handler(PERF_PROTOCOL, perf_handler)
        addr = str(server.get_addrs()[0])
        done = await _cli(
            addr,
            "--json",
            "--runs",
            "2",
            "--upload-bytes",
            "100001",
            "--download-bytes",
            "64KiB",
            "--transport",
            client_transport,
            "--timeout",
            "30",
        )
    assert done.returncode == 0, done.stderr.decode()
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["run"] for r in records] == [1, 2]
    for r in records:
        assert set(r) == RUN_KEYS
        assert r["ok"] is True and r["error"] is None
        assert (r["upload_bytes"], r["download_bytes"]) == (100001, 65536)
        assert r["peer_id"] == str(server.get_id())
        assert r["upload_mb_per_s"] > 0 and r["download_mb_per_s"] > 0


async def test_cli_table_output() -> None:
    server = build_host("tcp", listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")])
    async with server.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        server.set_stream_handler(PERF_PROTOCOL, perf_handler)
        done = await _cli(
            str(server.get_addrs()[0]), "--upload-bytes", "1k", "--download-bytes", "2k"
        )
    assert done.returncode == 0, done.stderr.decode()
    header, row = done.stdout.decode().splitlines()
    assert header.split()[:2] == ["run", "up"]
    assert row.split()[0] == "1" and row.split()[4] == f"{2048 / 2**20:.2f}"
    assert done.stderr == b""  # no progress bar when stderr is not a terminal


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/ip4/127.0.0.1/tcp/1"], b"bad address"),  # no /p2p/
        (["not-a-multiaddr"], b"bad address"),
        (
            ["/ip4/127.0.0.1/udp/1/p2p/12D3KooWJwuFc7M1wSTeMJmH1y46H2Qmput9tYBxE2C6rdgTyhE6"],
            b"no transport",
        ),
        (
            [
                "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWJwuFc7M1wSTeMJmH1y46H2Qmput9tYBxE2C6rdgTyhE6",
                "--runs",
                "0",
            ],
            b"--runs",
        ),
    ],
)
async def test_cli_bad_arguments(argv: list[str], message: bytes) -> None:
    done = await _cli(*argv)
    assert done.returncode == 2
    assert message in done.stderr


async def test_cli_bad_size_is_an_argparse_error() -> None:
    done = await _cli("/ip4/127.0.0.1/tcp/1", "--upload-bytes", "lots")
    assert done.returncode == 2
    assert b"not a size" in done.stderr


async def test_cli_unreachable_server_fails_within_timeout() -> None:
    # A port nothing listens on: the dial must fail (refused) or time out, never hang.
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWJwuFc7M1wSTeMJmH1y46H2Qmput9tYBxE2C6rdgTyhE6"
    done = await _cli(addr, "--timeout", "5", timeout=30)
    assert done.returncode == 2
    assert b"cannot connect" in done.stderr


def test_progress_bar_draws_and_clears() -> None:
    out = io.StringIO()
    bar = _ProgressBar(out, upload=4 * 2**20, download=4 * 2**20)
    bar(4 * 2**20, 0)  # half way
    bar(4 * 2**20, 4 * 2**20)  # complete: always drawn
    frames = out.getvalue().split("\r")[1:]
    assert frames[0].startswith("[" + "#" * 15 + "." * 15 + "]")
    assert frames[-1].startswith("[" + "#" * 30 + "]") and "down 4.0/4.0 MiB" in frames[-1]
    bar.clear()
    assert out.getvalue().endswith("\r")
