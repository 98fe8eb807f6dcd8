"""``py-libp2p-webtransport serve`` as a real subprocess."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from multiaddr import Multiaddr
from support.wt_helpers import wt_host

from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.cli.main import build_parser, config_from_args
from py_libp2p_webtransport.config import WebTransportConfig

ROOT = Path(__file__).resolve().parents[2]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "py_libp2p_webtransport.cli", *args]


def test_version() -> None:
    out = subprocess.run(_cmd("--version"), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.startswith("py-libp2p-webtransport ")


async def _start_serve(key_file: Path, engine: str, *extra: str) -> tuple[trio.Process, list[str]]:
    proc = await trio.lowlevel.open_process(
        _cmd("serve", "--key-file", str(key_file), "--engine", engine, *extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    buf = b""
    # Whole lines only (the addresses come in one flush; the tests use the first).
    while not buf.endswith(b"\n"):
        chunk = await proc.stdout.receive_some(4096)
        assert chunk, "serve exited before printing its addresses"
        buf += chunk
    return proc, buf.decode().split()


async def _stop(proc: trio.Process) -> int:
    proc.send_signal(signal.SIGINT)
    with trio.fail_after(15):
        return await proc.wait()


async def test_serve_prints_addrs_answers_echo_and_exits_on_sigint(
    engine: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "host.key"
    with trio.fail_after(90):
        proc, lines = await _start_serve(key_file, engine)
        try:
            assert lines, "no address printed"
            addr = Multiaddr(lines[0])
            parsed = wt_multiaddr.parse_webtransport_multiaddr(addr)
            assert parsed.peer_id is not None and len(parsed.certhashes) == 2
            # The QUIC address comes next, on the same UDP port (one socket).
            quic = wt_multiaddr.parse_quic_multiaddr(Multiaddr(lines[1]))
            assert (quic.port, quic.peer_id) == (parsed.port, parsed.peer_id)
            async with wt_host(engine) as client:
                from libp2p.peer.peerinfo import info_from_p2p_addr

                info = info_from_p2p_addr(addr)
                await client.connect(info)
                stream = await client.new_stream(info.peer_id, [ECHO_PROTOCOL])
                await stream.write(b"ping over the cli")
                await stream.close()
                assert await stream.read(100) == b"ping over the cli"
        finally:
            rc = await _stop(proc)
        assert rc == 0
        assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600

        # Restart with the same key file: same peer id, same certhashes.
        proc2, lines2 = await _start_serve(key_file, engine)
        try:
            again = wt_multiaddr.parse_webtransport_multiaddr(Multiaddr(lines2[0]))
            assert again.peer_id == parsed.peer_id
            assert again.certhashes == parsed.certhashes
        finally:
            assert await _stop(proc2) == 0


@pytest.mark.parametrize("mode", ["off", "always", "under_load"])
def test_retry_option_sets_the_config(mode: str) -> None:
    args = build_parser().parse_args(["serve", "--retry", mode])
    assert config_from_args(args).retry == mode


def test_retry_option_default_and_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    default = config_from_args(build_parser().parse_args(["serve"]))
    assert default.retry == WebTransportConfig().retry == "under_load"
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", "--retry", "sometimes"])
    assert exc.value.code == 2
    assert "--retry" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    assert "--retry {off,always,under_load}" in capsys.readouterr().out


def _initial_without_token() -> bytes:
    """A QUIC v1 client Initial (no token, noise payload): enough for a server to decide on a
    Retry from its header alone."""
    rng = random.Random(3)
    header = bytes([0xC3]) + (1).to_bytes(4, "big") + b"\x08" + rng.randbytes(8)
    header += b"\x08" + rng.randbytes(8) + b"\x00" + (0x4000 | 1180).to_bytes(2, "big")
    return header + rng.randbytes(1210 - len(header))


async def test_serve_retry_always_answers_a_new_client_with_retry(
    engine: str, tmp_path: Path
) -> None:
    """``serve --retry always``: an unvalidated Initial gets a Retry packet (long header, type
    3) back on the wire, and a real client still dials and echoes through it."""
    with trio.fail_after(90):
        proc, lines = await _start_serve(tmp_path / "host.key", engine, "--retry", "always")
        try:
            addr = Multiaddr(lines[0])
            target = ("127.0.0.1", int(addr.value_for_protocol("udp")))
            probe = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with probe:
                await probe.sendto(_initial_without_token(), target)
                with trio.fail_after(10):
                    reply, _ = await probe.recvfrom(2048)
            assert reply[0] & 0xF0 == 0xF0, hex(reply[0])  # long header, packet type Retry
            assert reply[1:5] == (1).to_bytes(4, "big")
            async with wt_host(engine) as client:
                from libp2p.peer.peerinfo import info_from_p2p_addr

                info = info_from_p2p_addr(addr)
                await client.connect(info)
                stream = await client.new_stream(info.peer_id, [ECHO_PROTOCOL])
                await stream.write(b"validated")
                await stream.close()
                assert await stream.read(100) == b"validated"
        finally:
            assert await _stop(proc) == 0
