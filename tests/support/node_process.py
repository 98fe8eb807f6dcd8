"""A node as a real process (``py-libp2p-webtransport serve``) that a test can crash and restart,
and a loopback HTTP "go" signal a browser page can wait for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio
from multiaddr import Multiaddr

ROOT = Path(__file__).resolve().parents[2]


async def start_node(
    key_file: Path, engine: str, port: int = 0, *extra: str
) -> tuple[trio.Process, Multiaddr]:
    """``serve`` with ``key_file`` on loopback ``port``; the process and its first address."""
    cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve"]
    cmd += ["--key-file", str(key_file), "--engine", engine, "--port", str(port), *extra]
    proc = await trio.lowlevel.open_process(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert proc.stdout is not None
    buf = b""
    while not buf.endswith(b"\n"):  # the addresses come in one flush
        chunk = await proc.stdout.receive_some(4096)
        assert chunk, "serve exited before printing its addresses"
        buf += chunk
    return proc, Multiaddr(buf.decode().split()[0])


async def crash(proc: trio.Process) -> None:
    """SIGKILL: no CONNECTION_CLOSE, no session close, nothing sent."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    with trio.fail_after(15):
        await proc.wait()


class Signal:
    """A loopback HTTP server: 503 until ``go()``, then 200 (CORS open, for a page's fetch).
    ``asked`` is set at the first request: the page has reached its waiting step."""

    def __init__(self) -> None:
        self.asked = trio.Event()
        self._go = False
        self.url = ""

    def go(self) -> None:
        self._go = True

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/go"
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                request += chunk
            self.asked.set()
            status = "200 OK" if self._go else "503 Service Unavailable"
            await stream.send_all(
                f"HTTP/1.1 {status}\r\nAccess-Control-Allow-Origin: *\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()
