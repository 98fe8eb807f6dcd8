"""``serve --metrics --stats`` and SIGUSR1, as a real subprocess, dialed by a py-libp2p host."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr
from support.scrape import scrape, value
from support.wt_helpers import read_to_end, wt_host

from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL

ROOT = Path(__file__).resolve().parents[2]
P = "py_libp2p_webtransport"


class Lines:
    """Whole lines of a subprocess pipe."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(4096)
            assert chunk, "serve closed its output"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    async def until(self, pattern: str) -> re.Match[str]:
        """The first line from now on that matches ``pattern``."""
        while (match := re.search(pattern, await self.next())) is None:
            pass
        return match


async def test_serve_metrics_stats_and_sigusr1(engine: str) -> None:
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", "--engine", engine]
        + ["--metrics", "127.0.0.1:0", "--stats", "0.2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    payload = b"m" * 100_000
    try:
        with trio.fail_after(60):
            url = (await err.until(r"metrics on (http://127\.0\.0\.1:\d+/metrics)")).group(1)
            info = info_from_p2p_addr(Multiaddr(await out.next()))
            async with wt_host(engine) as client:
                await client.connect(info)
                stream = await client.new_stream(info.peer_id, [ECHO_PROTOCOL])
                await stream.write(payload)
                await stream.close_write()
                assert await read_to_end(stream) == payload
                # The live line sees the connection, then SIGUSR1 dumps it.
                await err.until(
                    r"^conns in=1 out=0 webtransport=1 quic=0 streams=\d+ \| "
                    r"in [\d.]+ MB/s out [\d.]+ MB/s"
                )
                proc.send_signal(signal.SIGUSR1)
                dump = await err.until(r"<WebTransportConnection server peer=(\S+) remote=")
                assert dump.group(1) == str(client.get_id())
                assert "rtt=" in await err.next()  # the QUIC figures under it
                samples = await scrape(url)
            wt = {"transport": "webtransport", "direction": "inbound"}
            assert value(samples, f"{P}_connections_opened_total", **wt) == 1
            assert value(samples, f"{P}_connections_open", **wt) == 1
            assert value(samples, f"{P}_udp_received_bytes_total") >= len(payload)
            assert value(samples, f"{P}_udp_sent_bytes_total") >= len(payload)
            # prometheus_client's default registry (its GC collector is there): py-libp2p's.
            assert any(name.startswith("python_gc_") for name, _ in samples)
    finally:
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            assert await proc.wait() == 0
