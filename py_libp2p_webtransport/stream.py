"""``WebTransportStream``: one libp2p stream = one bidirectional WebTransport stream.

The stream translates py-libp2p's ``IMuxedStream`` calls into session calls and session events
into trio wake-ups; it does no parsing. Semantics (go-libp2p ``stream.go`` is the model):

- ``read(n)`` returns as much as is buffered, up to ``n``; it waits only while nothing is
  buffered. A clean FIN raises ``StreamEnded`` (a ``MuxedStreamEOF``, as py-libp2p's yamux, mplex
  and QUIC streams do; ``NetStream`` turns it into ``StreamEOF``). Returning ``b""`` instead
  makes py-libp2p's ``read_exactly`` retry 100 times, which kept ping handlers alive long enough
  for a browser's next ping to hit py-libp2p's 2-streams-per-peer ping limit. A peer
  RESET_STREAM raises ``MuxedStreamReset`` (never EOF), and so does a connection that went away.
- Every read hands the bytes back to the session as consumed, so flow-control credit follows
  the application (a slow reader slows the sender; nothing is dropped).
- ``write`` waits while the engine holds more than ``write_buffer_limit`` unacknowledged bytes
  for the stream, and hands big writes over in chunks: no unbounded queue anywhere.
- ``close()`` half-closes (FIN), like yamux: the read side stays open. ``close_read()`` sends
  STOP_SENDING when unread data may still come. ``reset(code)`` sends RESET_STREAM and
  STOP_SENDING with a WebTransport application code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import trio
from libp2p.abc import IMuxedStream
from libp2p.stream_muxer.exceptions import MuxedStreamClosed, MuxedStreamReset

from . import _mux
from .errors import StreamEnded

if TYPE_CHECKING:
    from .conn import WebTransportConnection

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WebTransportStream(IMuxedStream):
    """A bidirectional WebTransport stream carrying one libp2p stream."""

    def __init__(self, conn: WebTransportConnection, stream_id: int, *, is_initiator: bool):
        self.muxed_conn = conn
        self._conn = conn
        self.stream_id = stream_id
        self._is_initiator = is_initiator
        self._recv = _mux.RecvBuffer()
        # Set on every state change, then dropped; created only by a task about to wait, so
        # the per-packet data path allocates nothing when nobody is blocked.
        self._changed: trio.Event | None = None
        self._read_lock = trio.Lock()
        self._write_lock = trio.Lock()
        self._remote_reset: int | None = None  # peer's RESET_STREAM code
        self._stop_sending: int | None = None  # peer's STOP_SENDING code
        self._local_reset = False
        self._write_closed = False  # we sent FIN
        self._read_closed = False  # we sent STOP_SENDING / gave up reading
        self._conn_error: str | None = None
        self._stall_error: int | None = None  # aborted by the connection's stall breaker
        self.read_deadline: float | None = None
        self.write_deadline: float | None = None

    def __repr__(self) -> str:
        return f"<WebTransportStream id={self.stream_id} initiator={self._is_initiator}>"

    @property
    def is_initiator(self) -> bool:
        """True if we opened the stream."""
        return self._is_initiator

    # --- events from the connection (called synchronously by the endpoint pump) ---------------

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    async def _wait_changed(self) -> None:
        """Wait for the next ``_notify`` (state is re-checked by the caller afterwards)."""
        changed = self._changed
        if changed is None:
            changed = self._changed = trio.Event()
        await changed.wait()

    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if (
            self._read_closed
            or self._local_reset
            or self._remote_reset is not None
            or self._stall_error is not None
        ):
            # We told the peer to stop (or the stream is dead): hand the credit back.
            if data:
                self._conn._consume(self.stream_id, len(data))
            return
        if data:
            self._recv.append(data)
        if end_stream and not self._recv.eof:
            self._recv.feed_eof()
            self._maybe_forget()  # e.g. a handshake stream nobody reads any more
        self._notify()

    def _on_reset(self, error_code: int | None) -> None:
        self._remote_reset = error_code if error_code is not None else 0
        dropped = self._recv.clear()
        if dropped:
            self._conn._consume(self.stream_id, dropped)
        self._notify()
        self._maybe_forget()

    def _on_stop_sending(self, error_code: int | None) -> None:
        self._stop_sending = error_code if error_code is not None else 0
        self._notify()
        self._maybe_forget()

    def _on_connection_lost(self, reason: str) -> None:
        # The session is gone and with it every stream (WT_SESSION_GONE): like a reset, unread
        # data is dropped and the next read raises. No credit to return on a dead connection.
        self._conn_error = reason
        self._recv.clear()
        self._notify()

    def _on_stall_broken(self, error_code: int) -> None:
        # Both directions end with ``error_code``; dropping the buffer returns its credit, which
        # is what unblocks the connection's other streams.
        self._stall_error = error_code
        dropped = self._recv.clear()
        if dropped:
            self._conn._consume(self.stream_id, dropped)
        if self._remote_reset is None and not self._recv.eof:
            self._conn._stop_sending(self.stream_id, error_code)
        if self._stop_sending is None and not self._write_closed:
            self._conn._reset(self.stream_id, error_code)
        self._notify()
        self._conn._forget(self.stream_id)

    def _writable_maybe(self) -> None:
        """The engine made progress (acks, credit): a blocked writer may continue."""
        self._notify()

    # --- IMuxedStream -------------------------------------------------------------------------

    async def read(self, n: int | None = None) -> bytes:
        """Read up to ``n`` bytes (all buffered bytes when ``n`` is None or negative).

        Raises ``StreamEnded`` (``MuxedStreamEOF``) at a clean end of stream,
        ``MuxedStreamReset`` when the peer reset the stream or the connection is gone,
        ``MuxedStreamClosed`` after ``close_read``/``reset`` on our side, and ``TimeoutError``
        past the read deadline.
        """
        if n is not None and n == 0:
            return b""
        size = -1 if n is None or n < 0 else n
        return await self._with_deadline(self.read_deadline, "read", lambda: self._read(size))

    async def _read(self, size: int) -> bytes:
        async with self._read_lock:
            while True:
                if self._remote_reset is not None:
                    raise MuxedStreamReset(
                        f"stream {self.stream_id} reset by peer (code {self._remote_reset})"
                    )
                if self._stall_error is not None:
                    raise MuxedStreamReset(self._stall_message())
                if self._local_reset or self._read_closed:
                    if self._conn_error is not None:
                        # The swarm resets a dead connection's streams: the cause is the loss.
                        raise MuxedStreamReset(f"stream {self.stream_id}: {self._conn_error}")
                    raise MuxedStreamClosed(f"stream {self.stream_id} closed for reading")
                if self._recv.size:
                    data: bytes = self._recv.read(size)
                    self._conn._consume(self.stream_id, len(data))
                    if self._recv.at_eof:
                        self._maybe_forget()
                    return data
                if self._recv.eof:
                    self._maybe_forget()
                    raise StreamEnded(f"stream {self.stream_id}: end of stream")
                if self._conn_error is not None:
                    raise MuxedStreamReset(f"stream {self.stream_id}: {self._conn_error}")
                await self._wait_changed()

    async def write(self, data: bytes) -> None:
        """Send ``data``; waits while the stream's unacknowledged send buffer is full."""
        if not data:
            self._check_writable()
            return
        await self._with_deadline(self.write_deadline, "write", lambda: self._write(data))

    def _check_writable(self) -> None:
        if self._remote_reset is not None:
            raise MuxedStreamReset(
                f"stream {self.stream_id} reset by peer (code {self._remote_reset})"
            )
        if self._stop_sending is not None:
            raise MuxedStreamReset(
                f"stream {self.stream_id}: peer stopped reading (code {self._stop_sending})"
            )
        if self._stall_error is not None:
            raise MuxedStreamReset(self._stall_message())
        if self._local_reset:
            raise MuxedStreamClosed(f"stream {self.stream_id} was reset")
        if self._write_closed:
            raise MuxedStreamClosed(f"stream {self.stream_id} closed for writing")
        if self._conn_error is not None:
            raise MuxedStreamReset(f"stream {self.stream_id}: {self._conn_error}")

    async def _write(self, data: bytes) -> None:
        config = self._conn.config
        view = memoryview(data)
        async with self._write_lock:
            offset = 0
            while offset < len(view):
                while True:
                    self._check_writable()
                    if self._conn._send_buffer_size(self.stream_id) < config.write_buffer_limit:
                        break
                    self._conn._watch_writable(self)
                    await self._wait_changed()
                # A write that fits one chunk goes to the engine as is (the engine copies it
                # into its send queue anyway); only bigger ones are cut, one copy per chunk.
                if offset == 0 and len(view) <= config.write_chunk_size and type(data) is bytes:
                    chunk = data
                else:
                    chunk = bytes(view[offset : offset + config.write_chunk_size])
                self._conn._send(self.stream_id, chunk, end_stream=False)
                offset += len(chunk)

    async def close(self) -> None:
        """Half-close: send FIN; the read side stays open (yamux semantics)."""
        await self.close_write()

    async def close_write(self) -> None:
        """Send FIN after any queued data. Idempotent; a no-op on a dead stream."""
        if self._write_closed or self._local_reset:
            return
        self._write_closed = True
        if self._remote_reset is None and self._stop_sending is None and self._conn_error is None:
            self._conn._send(self.stream_id, b"", end_stream=True)
        self._notify()
        self._maybe_forget()

    async def close_read(self, error_code: int = 0) -> None:
        """Stop reading: STOP_SENDING if more data may come, drop what is buffered."""
        if self._read_closed or self._local_reset or self._stall_error is not None:
            return
        self._read_closed = True
        dropped = self._recv.clear()
        if dropped:
            self._conn._consume(self.stream_id, dropped)
        if not self._recv.eof and self._remote_reset is None and self._conn_error is None:
            self._conn._stop_sending(self.stream_id, error_code)
        self._notify()
        self._maybe_forget()

    async def reset(self, error_code: int = 0) -> None:
        """Abort both directions with a WebTransport application ``error_code``."""
        if self._local_reset:
            return
        self._local_reset = True
        if self._stall_error is not None:
            return  # already aborted both ways
        dropped = self._recv.clear()
        if dropped:
            self._conn._consume(self.stream_id, dropped)
        if self._conn_error is None:
            if self._remote_reset is None and not self._recv.eof:
                self._conn._stop_sending(self.stream_id, error_code)
            if self._stop_sending is None and not self._write_closed:
                self._conn._reset(self.stream_id, error_code)
            elif self._write_closed and self._remote_reset is None:
                # FIN sent but maybe not delivered: a reset still tells the peer to give up.
                self._conn._reset(self.stream_id, error_code)
        self._notify()
        self._conn._forget(self.stream_id)

    def set_deadline(self, ttl: int) -> None:
        """Per-operation timeout (seconds) for reads and writes, as mplex does."""
        self.set_read_deadline(ttl)
        self.set_write_deadline(ttl)

    def set_read_deadline(self, ttl: float) -> None:
        """Per-read timeout in seconds; a read that waits longer raises ``TimeoutError``."""
        if ttl < 0:
            raise ValueError(f"deadline must be >= 0, got {ttl}")
        self.read_deadline = ttl

    def set_write_deadline(self, ttl: float) -> None:
        """Per-write timeout in seconds; a write that waits longer raises ``TimeoutError``."""
        if ttl < 0:
            raise ValueError(f"deadline must be >= 0, got {ttl}")
        self.write_deadline = ttl

    def get_remote_address(self) -> tuple[str, int] | None:
        """The peer's UDP (host, port)."""
        return self._conn.get_remote_address()

    async def __aenter__(self) -> WebTransportStream:
        return self

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    async def _with_deadline(
        ttl: float | None, what: str, operation: Callable[[], Awaitable[T]]
    ) -> T:
        if ttl is None:
            return await operation()
        try:
            with trio.fail_after(ttl):
                return await operation()
        except trio.TooSlowError:
            raise TimeoutError(f"stream {what} timed out after {ttl} s") from None

    def _stall_message(self) -> str:
        return (
            f"stream {self.stream_id} aborted: its unread data held the connection's reception"
            f" paused past stall_timeout (code {self._stall_error:#x})"
        )

    def _maybe_forget(self) -> None:
        """Drop the connection's reference once neither direction can carry data any more."""
        read_done = self._read_closed or self._remote_reset is not None or self._recv.at_eof
        write_done = self._write_closed or self._stop_sending is not None
        if read_done and write_done:
            self._conn._forget(self.stream_id)
