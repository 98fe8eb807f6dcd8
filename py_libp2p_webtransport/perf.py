"""``/perf/1.0.0`` (libp2p perf spec) server and client, and the ``/echo/1.0.0`` handler.

Perf: the client sends an 8-byte big-endian count of bytes it wants back, then its upload, then
closes its write side; the server reads the count, reads (and discards) until EOF, then sends
that many bytes and closes. Timing uploads from the client side needs the server's reply, since
``close`` returns before the server has read everything (spec:
https://github.com/libp2p/specs/blob/master/perf/perf.md).
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import Any

from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID

PERF_PROTOCOL = TProtocol("/perf/1.0.0")
ECHO_PROTOCOL = TProtocol("/echo/1.0.0")

#: Upper bound of a download the server agrees to send (protects the server).
MAX_PERF_DOWNLOAD = 1 << 40
_CHUNK = 64 * 1024
_ZEROS = bytes(_CHUNK)


async def _read(stream: Any, n: int) -> bytes:
    """``stream.read(n)`` with ``b""`` at the end, whichever way the muxer signals it (ours
    returns ``b""``; yamux and py-libp2p's QUIC/WebTransport raise ``StreamEOF``)."""
    try:
        data: bytes = await stream.read(n)
    except StreamEOF:
        return b""
    return data


async def _read_exact(stream: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await _read(stream, n - len(buf))
        if not chunk:
            raise EOFError(f"stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


async def _drain(stream: Any) -> int:
    total = 0
    while chunk := await _read(stream, 1 << 20):
        total += len(chunk)
    return total


async def _send_zeros(stream: Any, n: int) -> None:
    while n > 0:
        size = min(n, _CHUNK)
        await stream.write(_ZEROS[:size])
        n -= size


async def perf_handler(stream: INetStream) -> None:
    """Serve one perf request (see module docstring)."""
    try:
        header = await _read_exact(stream, 8)
        (download,) = struct.unpack(">Q", header)
        if download > MAX_PERF_DOWNLOAD:
            await stream.reset()
            return
        await _drain(stream)
        await _send_zeros(stream, download)
        await stream.close()
    except Exception:
        await stream.reset()


async def echo_handler(stream: INetStream) -> None:
    """Echo everything back until EOF, then close."""
    try:
        while chunk := await _read(stream, 1 << 20):
            await stream.write(chunk)
        await stream.close()
    except Exception:
        await stream.reset()


def register_handlers(host: IHost) -> None:
    """Serve ``/perf/1.0.0`` and ``/echo/1.0.0`` on ``host``."""
    host.set_stream_handler(PERF_PROTOCOL, perf_handler)
    host.set_stream_handler(ECHO_PROTOCOL, echo_handler)


@dataclass(frozen=True)
class PerfResult:
    """One perf run, seconds measured on the client."""

    upload_bytes: int
    download_bytes: int
    upload_seconds: float  # until the server started answering (it has read our EOF)
    download_seconds: float  # from then until the download's EOF


async def perf_client(host: IHost, peer_id: ID, upload: int, download: int) -> PerfResult:
    """Run one perf request towards ``peer_id``; needs an open connection or known addrs."""
    stream = await host.new_stream(peer_id, [PERF_PROTOCOL])
    start = time.perf_counter()
    await stream.write(struct.pack(">Q", download))
    await _send_zeros(stream, upload)
    await stream.close_write()  # type: ignore[attr-defined]
    first = await _read(stream, 1 << 20) if download else b""
    uploaded = time.perf_counter()
    received = len(first) + await _drain(stream) if download else await _drain(stream)
    done = time.perf_counter()
    if received != download:
        raise EOFError(f"perf: expected {download} bytes, got {received}")
    return PerfResult(upload, download, uploaded - start, done - uploaded)
