"""The libp2p perf protocol, ``/perf/1.0.0``: a server handler and a timing client.

Spec: https://github.com/libp2p/specs/blob/master/perf/perf.md. On one stream the client writes the
8-byte big-endian number of bytes it wants back, uploads any number of bytes, and closes its write
side; the server reads until EOF, then sends the requested number of bytes and closes.

Timing (all from ``time.perf_counter``, measured by :func:`run_perf` after the stream is open):

- ``upload_seconds``: first header byte written → first sign of the server's reply (first
  downloaded byte, or EOF when nothing was requested). The server only replies after it has read
  EOF, so this is "until the server has received everything", not "until our buffer took it".
- ``time_to_first_byte_seconds``: our write side closed → first downloaded byte (``None`` when no
  bytes were requested): the tail of the upload still in flight plus one round trip.
- ``download_seconds``: first downloaded byte → EOF (0 when nothing was requested).

This module works over any py-libp2p transport; it never touches the transport itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.id import ID
from libp2p.transport.quic.exceptions import QUICStreamClosedError

from ..errors import PerfError

__all__ = [
    "CHUNK_SIZE",
    "PERF_PROTOCOL",
    "PerfResult",
    "ProgressCallback",
    "perf_handler",
    "run_perf",
]

logger = logging.getLogger(__name__)

PERF_PROTOCOL = TProtocol("/perf/1.0.0")
HEADER_SIZE = 8
MAX_REQUEST = 2**64 - 1
# Big enough that per-write overhead of any muxer is small, small enough to bound memory.
CHUNK_SIZE = 256 * 1024
# One zero-filled buffer shared by every writer: uploads and downloads carry no meaning.
_ZEROS = bytes(CHUNK_SIZE)

ProgressCallback = Callable[[int, int], None]
"""``on_progress(uploaded_bytes, downloaded_bytes)``, called after every chunk."""


async def _read_chunk(stream: INetStream, size: int) -> bytes:
    """Read up to ``size`` bytes; ``b""`` at EOF (py-libp2p muxers signal EOF both ways)."""
    try:
        return await stream.read(size)
    except StreamEOF:
        return b""
    except StreamReset as exc:
        # py-libp2p 0.8's QUIC stream raises QUICStreamClosedError (wrapped as StreamReset) from
        # a read once both directions ended with FIN: that is EOF, a real reset raises
        # QUICStreamResetError instead.
        if isinstance(exc.__cause__, QUICStreamClosedError):
            return b""
        raise


async def _write_zeros(
    stream: INetStream, count: int, progress: Callable[[int], None] | None = None
) -> None:
    """Write ``count`` zero bytes in chunks of at most CHUNK_SIZE, reusing one buffer."""
    done = 0
    while done < count:
        n = min(CHUNK_SIZE, count - done)
        await stream.write(_ZEROS if n == CHUNK_SIZE else _ZEROS[:n])
        done += n
        if progress is not None:
            progress(done)


async def _read_header(stream: INetStream) -> int:
    """Read the 8-byte request; PerfError when the stream ends first."""
    header = b""
    while len(header) < HEADER_SIZE:
        chunk = await _read_chunk(stream, HEADER_SIZE - len(header))
        if not chunk:
            raise PerfError(
                f"stream ended after {len(header)} of {HEADER_SIZE} header bytes",
            )
        header += chunk
    return int.from_bytes(header, "big")


async def _close_write(stream: INetStream) -> None:
    """Half-close: send EOF but keep reading (``INetStream`` does not declare it; NetStream has)."""
    close_write = getattr(stream, "close_write", None)
    if close_write is None:
        raise PerfError(f"{type(stream).__name__} cannot half-close; perf needs it")
    await close_write()


async def _reset_quietly(stream: INetStream) -> None:
    """Reset ``stream``, even from a cancelled scope, within a second, ignoring failures."""
    with trio.CancelScope(shield=True), trio.move_on_after(1.0):
        try:
            await stream.reset()
        except Exception:  # the stream may already be gone; the original error is what matters
            logger.debug("perf: reset after error failed", exc_info=True)


async def perf_handler(stream: INetStream) -> None:
    """Serve one ``/perf/1.0.0`` stream: read the request and the upload, then send the reply.

    Memory is bounded by CHUNK_SIZE whatever the sizes. A malformed request (the stream ends
    inside the 8-byte header) or any stream error is logged and the stream is reset.
    """
    try:
        requested = await _read_header(stream)
        uploaded = 0
        while True:
            chunk = await _read_chunk(stream, CHUNK_SIZE)
            if not chunk:
                break
            uploaded += len(chunk)
        await _write_zeros(stream, requested)
        await stream.close()
        logger.debug("perf: received %d bytes, sent %d bytes", uploaded, requested)
    except trio.Cancelled:
        await _reset_quietly(stream)
        raise
    except Exception as exc:
        logger.error("perf: stream failed, resetting it: %s", exc)
        await _reset_quietly(stream)


@dataclass(frozen=True)
class PerfResult:
    """One perf run. Byte counts are exact; times are seconds; MB is 10**6 bytes."""

    upload_bytes: int
    download_bytes: int
    stream_open_seconds: float
    """``host.new_stream`` (dial if needed, protocol negotiation); not part of any rate."""
    upload_seconds: float
    time_to_first_byte_seconds: float | None
    download_seconds: float
    total_seconds: float
    """First header byte written → EOF of the reply."""

    @property
    def upload_mb_per_s(self) -> float | None:
        """Upload rate, or None when nothing was uploaded."""
        return _rate(self.upload_bytes, self.upload_seconds)

    @property
    def download_mb_per_s(self) -> float | None:
        """Download rate, or None when nothing was downloaded."""
        return _rate(self.download_bytes, self.download_seconds)

    def as_dict(self) -> dict[str, object]:
        """Every field plus the two rates, under stable keys."""
        out: dict[str, object] = asdict(self)
        out["upload_mb_per_s"] = self.upload_mb_per_s
        out["download_mb_per_s"] = self.download_mb_per_s
        return out

    def to_json(self) -> str:
        """One JSON object with the keys of :meth:`as_dict`, sorted."""
        return json.dumps(self.as_dict(), sort_keys=True)


def _rate(nbytes: int, seconds: float) -> float | None:
    if nbytes == 0 or seconds <= 0:
        return None
    return nbytes / seconds / 1e6


async def run_perf(
    host: IHost,
    peer_id: ID,
    upload_bytes: int,
    download_bytes: int,
    *,
    on_progress: ProgressCallback | None = None,
) -> PerfResult:
    """Run one perf exchange with ``peer_id`` on a new stream and time it (see module docstring).

    Raises ValueError for sizes out of range and PerfError when the server returns a different
    number of bytes than requested. Bound it with ``trio.fail_after``; the stream is reset when
    the run fails or is cancelled.
    """
    if upload_bytes < 0:
        raise ValueError(f"upload_bytes must be >= 0, got {upload_bytes}")
    if not 0 <= download_bytes <= MAX_REQUEST:
        raise ValueError(f"download_bytes must be in [0, 2**64), got {download_bytes}")

    t_open = time.perf_counter()
    stream = await host.new_stream(peer_id, [PERF_PROTOCOL])
    try:
        t_start = time.perf_counter()
        await stream.write(download_bytes.to_bytes(HEADER_SIZE, "big"))

        def upload_progress(done: int) -> None:
            if on_progress is not None:
                on_progress(done, 0)

        await _write_zeros(stream, upload_bytes, upload_progress)
        await _close_write(stream)
        t_closed = time.perf_counter()

        received = 0
        t_first: float | None = None
        while True:
            chunk = await _read_chunk(stream, CHUNK_SIZE)
            if t_first is None:
                t_first = time.perf_counter()  # first data, or EOF when nothing comes back
            if not chunk:
                break
            received += len(chunk)
            if received > download_bytes:
                break
            if on_progress is not None:
                on_progress(upload_bytes, received)
        t_end = time.perf_counter()
    except BaseException:
        await _reset_quietly(stream)
        raise
    if received != download_bytes:
        await _reset_quietly(stream)
        got = f"more than {download_bytes}" if received > download_bytes else str(received)
        raise PerfError(f"server sent {got} bytes, {download_bytes} were requested")
    try:
        await stream.close()
    except Exception:  # both sides are done; a late close error changes nothing measured
        logger.debug("perf: close after a complete run failed", exc_info=True)

    assert t_first is not None  # the loop runs at least once
    return PerfResult(
        upload_bytes=upload_bytes,
        download_bytes=download_bytes,
        stream_open_seconds=t_start - t_open,
        upload_seconds=t_first - t_start,
        time_to_first_byte_seconds=(t_first - t_closed) if download_bytes else None,
        download_seconds=(t_end - t_first) if download_bytes else 0.0,
        total_seconds=t_end - t_start,
    )
