"""``serve --metrics --stats`` and SIGUSR1, as a real subprocess, dialed by py-libp2p hosts over
WebTransport and over ``/quic-v1``."""

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
from support.quic_helpers import quic_host
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
            quic_text = await out.next()  # the same UDP port, /quic-v1
            assert "/quic-v1/p2p/" in quic_text and "webtransport" not in quic_text
            async with wt_host(engine) as client, quic_host(engine, ()) as quic_client:
                await client.connect(info)
                await quic_client.connect(info_from_p2p_addr(Multiaddr(quic_text)))
                for dialer in (client, quic_client):
                    stream = await dialer.new_stream(info.peer_id, [ECHO_PROTOCOL])
                    await stream.write(payload)
                    await stream.close_write()
                    assert await read_to_end(stream) == payload
                # The live line sees both connections, then SIGUSR1 dumps them.
                await err.until(
                    r"^conns in=2 out=0 webtransport=1 quic=1 streams=\d+ \| "
                    r"in [\d.]+ MB/s out [\d.]+ MB/s"
                )
                proc.send_signal(signal.SIGUSR1)
                dump = await err.until(r"<WebTransportConnection server peer=(\S+) remote=")
                assert dump.group(1) == str(client.get_id())
                assert "rtt=" in await err.next()  # the QUIC figures under it
                dump = await err.until(r"<QuicConnection server peer=(\S+) remote=")
                assert dump.group(1) == str(quic_client.get_id())
                assert "rtt=" in await err.next()
                samples = await scrape(url)
            for transport in ("webtransport", "quic"):
                labels = {"transport": transport, "direction": "inbound"}
                assert value(samples, f"{P}_connections_opened_total", **labels) == 1
                assert value(samples, f"{P}_connections_open", **labels) == 1
            # Both echoes went through the serve node's one socket.
            assert value(samples, f"{P}_udp_received_bytes_total") >= 2 * len(payload)
            assert value(samples, f"{P}_udp_sent_bytes_total") >= 2 * len(payload)
            # prometheus_client's default registry (its GC collector is there): py-libp2p's.
            assert any(name.startswith("python_gc_") for name, _ in samples)
    finally:
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(15):
            assert await proc.wait() == 0
