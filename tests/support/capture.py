"""Packet captures on loopback with Debian's ``dumpcap``, read back with ``tshark``.

Capturing needs root (or the capture capabilities); without them, or without the tools, the test
skips with the reason, and fails under CI (where ``scripts/setup-browsers.sh`` installs tshark
as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the capture test must run in CI, but {reason}")
    pytest.skip(reason)


def require_tools() -> None:
    for tool in ("dumpcap", "tshark"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is missing (Debian: apt-get install tshark)")


@asynccontextmanager
async def loopback_capture(port: int, path: Path) -> AsyncIterator[None]:
    """Capture UDP to or from ``port`` on ``lo`` into ``path`` while the body runs (every packet
    the body sent or received is in the file afterwards)."""
    iface = "lo"
    proc = subprocess.Popen(
        ["dumpcap", "-i", iface, "-f", f"udp port {port}", "-w", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        await _until_capturing(proc, iface, port)
        yield
        await _until_written(path, port)
    finally:
        proc.terminate()  # our own child, by its pid
        await trio.to_thread.run_sync(proc.wait)
        proc.stderr.close()


async def _until_capturing(proc: subprocess.Popen[bytes], iface: str, port: int) -> None:
    """Return once dumpcap has captured a packet: "Capturing on" comes before the capture
    really starts, so probe datagrams (one byte: the endpoint drops them as malformed) go to
    ``port`` until dumpcap's packet counter ("Packets: N" on stderr) shows one."""
    assert proc.stderr is not None
    stderr = proc.stderr
    done = trio.Event()
    output = bytearray()

    def read_until_counted() -> None:
        while b"Packets: " not in output:
            chunk = stderr.read1(4096)
            if not chunk:  # it exited: no permission, no such interface...
                return
            output.extend(chunk)

    async def probe() -> None:
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not done.is_set():
                await sock.sendto(b"\x00", ("127.0.0.1", port))
                with trio.move_on_after(0.2):
                    await done.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe)
        await trio.to_thread.run_sync(read_until_counted)
        done.set()
    if b"Packets: " not in output:
        skip_or_fail(
            f"dumpcap cannot capture on {iface}: {output.decode(errors='replace').strip()}"
        )


async def _until_written(path: Path, port: int) -> None:
    """Return once every packet sent so far is in the file. dumpcap writes packets as the kernel
    hands them over, in blocks (a quarter second or more behind on a loaded machine), and what it
    has not written when it is terminated is lost: once a capture ended right after the client's
    CONNECT, without the server's answer. Loopback captures a datagram when it is sent, in order,
    so a marker sent now follows every packet of the body: once it is in the file, so are they
    (the endpoint drops the marker as malformed)."""
    marker = b"end-of-capture " + os.urandom(16)
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.sendto(marker, ("127.0.0.1", port))
    while marker not in await trio.Path(path).read_bytes():
        await trio.sleep(0.02)


async def tshark_fields(capture: Path, display_filter: str, field: str, *options: str) -> list[str]:
    """Every value of ``field`` in the packets ``display_filter`` keeps."""
    result = await trio.run_process(
        ["tshark", "-r", str(capture), *options, "-Y", display_filter, "-T", "fields", "-e", field],
        capture_stdout=True,
        capture_stderr=True,
    )
    return [
        value for line in result.stdout.decode().splitlines() for value in line.split(",") if value
    ]
