"""``WebTransportStream``: one libp2p stream = one bidirectional WebTransport stream.

The stream translates py-libp2p's ``IMuxedStream`` calls into calls on its ``StreamHost`` (the
connection) and the session's events into trio wake-ups; it does no parsing. Semantics (go-libp2p
``stream.go`` is the model):

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

Each direction has one state, and ``stream_state.py`` holds the table: what ``read`` and
``write`` raise in each state (``close``, ``close_read`` and ``reset`` never raise) and where
each event and operation leads. What goes on the wire is decided here, next to each operation,
from the states it leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

import trio
from libp2p.abc import IMuxedConn, IMuxedStream
from libp2p.stream_muxer.exceptions import MuxedStreamReset

from . import _mux
from .errors import StreamEnded
from .stream_state import (
    CLOSE_READ,
    CLOSE_WRITE,
    ON_LOST_READ,
    ON_LOST_WRITE,
    ON_PEER_RESET,
    ON_PEER_STOP,
    ON_STALL_READ,
    ON_STALL_WRITE,
    READ_ERRORS,
    RESET_READ,
    RESET_WRITE,
    WRITE_ERRORS,
    ReadState,
    WriteState,
)

if TYPE_CHECKING:
    from .config import WebTransportConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The per-packet paths compare with these: an Enum member lookup (``ReadState.OPEN``) costs
# about 60 ns on CPython 3.11, a module global under 10.
_READ_OPEN = ReadState.OPEN
_FIN_RECEIVED = ReadState.FIN_RECEIVED
_LOST_AFTER_FIN = ReadState.LOST_AFTER_FIN
_RESET_BY_PEER = ReadState.RESET_BY_PEER
_WRITE_OPEN = WriteState.OPEN


class StreamHost(Protocol):
    """What a stream needs from its connection (``muxed_conn.MuxedConnection`` implements it,
    for WebTransport and QUIC connections alike).

    Calls are synchronous and never block; the host wakes the endpoint pump itself after a call
    that queued something, and ignores stream calls once the connection is gone.
    """

    #: ``write_buffer_limit`` and ``write_chunk_size`` bound what a writer queues.
    config: WebTransportConfig

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue payload (``end_stream``: FIN); ``MuxedStreamReset`` if the session already
        ended the stream (a peer reset or the session's end we have not been told of yet)."""

    def consume(self, stream_id: int, n: int) -> None:
        """``n`` bytes of the stream were read or dropped: their credit may return."""

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM with a WebTransport code (a no-op once our sending side is over)."""

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING with a WebTransport code (a no-op once the receiving side is over)."""

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to the stream that still wait in the engine (write backpressure)."""

    def wake_when_writable(self, stream: WebTransportStream) -> None:
        """Call ``stream.on_writable()`` after the next pump turn (acks or credit may come)."""

    def forget_stream(self, stream_id: int) -> None:
        """The stream carries nothing more: stop routing its events."""

    def get_remote_address(self) -> tuple[str, int] | None:
        """The peer's UDP (host, port)."""


class WebTransportStream(IMuxedStream):
    """A bidirectional WebTransport stream carrying one libp2p stream."""

    def __init__(self, conn: StreamHost, stream_id: int, *, is_initiator: bool):
        # py-libp2p reads ``muxed_conn``; the host is our MuxedConnection in production.
        self.muxed_conn = cast(IMuxedConn, conn)
        self._conn = conn
        self.stream_id = stream_id
        self._is_initiator = is_initiator
        self._recv = _mux.RecvBuffer()
        self._read = ReadState.OPEN
        self._write = WriteState.OPEN
        # Messages of the current error states that carry details (codes, the loss's reason);
        # set when such a state is entered, the fixed ones are built only when raised.
        self._read_why = self._write_why = ""
        # Set on every state change, then dropped; created only by a task about to wait, so
        # the per-packet data path allocates nothing when nobody is blocked.
        self._changed: trio.Event | None = None
        self._read_lock = trio.Lock()
        self._write_lock = trio.Lock()
        self.read_deadline: float | None = None
        self.write_deadline: float | None = None

    def __repr__(self) -> str:
        return f"<WebTransportStream id={self.stream_id} initiator={self._is_initiator}>"

    @property
    def is_initiator(self) -> bool:
        """True if we opened the stream."""
        return self._is_initiator

    def describe(self) -> str:
        """Both states and the buffered bytes, for logs and failure dumps."""
        return f"read={self._read.value} write={self._write.value} buffered={self._recv.size}"

    # --- events from the connection (called synchronously by the endpoint pump) ---------------

    def on_data(self, data: bytes, end_stream: bool) -> None:
        """Payload (and maybe the peer's FIN) arrived."""
        if self._read is not _READ_OPEN:
            # We told the peer to stop (or the stream is dead): hand the credit back.
            if data:
                self._conn.consume(self.stream_id, len(data))
            return
        if data:
            self._recv.append(data)
        if end_stream:
            self._recv.feed_eof()
            self._read = ReadState.FIN_RECEIVED
            self._maybe_forget()  # e.g. a handshake stream nobody reads any more
        self._notify()

    def on_reset(self, error_code: int | None) -> None:
        """The peer sent RESET_STREAM: unread bytes are dropped (their credit returns)."""
        code = error_code if error_code is not None else 0
        self._enter_read(ON_PEER_RESET, f"stream {self.stream_id} reset by peer (code {code})")
        self._drop_buffered()
        self._notify()
        self._maybe_forget()

    def on_stop_sending(self, error_code: int | None) -> None:
        """The peer sent STOP_SENDING: writes fail from now on."""
        code = error_code if error_code is not None else 0
        why = f"stream {self.stream_id}: peer stopped reading (code {code})"
        self._enter_write(ON_PEER_STOP, why)
        self._notify()
        self._maybe_forget()

    def on_connection_lost(self, reason: str) -> None:
        """The session is gone and with it every stream (WT_SESSION_GONE). Unread bytes of a
        stream whose FIN had arrived are complete, so they stay readable (then the end of
        stream); an unfinished stream's are dropped, as by a reset. No credit to return."""
        why = f"stream {self.stream_id}: {reason}"
        self._enter_read(ON_LOST_READ, why)
        self._enter_write(ON_LOST_WRITE, why)
        if self._read is not _LOST_AFTER_FIN:
            self._recv.clear()
        self._notify()

    def on_stalled(self, error_code: int) -> None:
        """The session's stall breaker aborted the stream (it already sent STOP_SENDING and
        RESET_STREAM). Dropping the buffer returns its credit, which is what lets the
        connection's other streams flow again."""
        why = (
            f"stream {self.stream_id} aborted: its unread data held the connection's reception"
            f" paused past stall_timeout (code {error_code:#x})"
        )
        self._enter_read(ON_STALL_READ, why)
        self._enter_write(ON_STALL_WRITE, why)
        self._drop_buffered()
        self._notify()
        self._conn.forget_stream(self.stream_id)

    def on_writable(self) -> None:
        """The engine made progress (acks, credit): a blocked writer may continue."""
        self._notify()

    # --- IMuxedStream -------------------------------------------------------------------------

    async def read(self, n: int | None = None) -> bytes:
        """Read up to ``n`` bytes (all buffered bytes when ``n`` is None or negative).

        Raises what ``READ_ERRORS`` says once nothing is buffered: ``StreamEnded``
        (``MuxedStreamEOF``) at a clean end of stream, ``MuxedStreamReset`` when the peer reset
        the stream, the connection is gone or the stall breaker aborted it, ``MuxedStreamClosed``
        after ``close_read``/``reset`` on our side; ``TimeoutError`` past the read deadline.
        """
        if n is not None and n == 0:
            return b""
        size = -1 if n is None or n < 0 else n
        return await self._with_deadline(self.read_deadline, "read", lambda: self._read_some(size))

    async def _read_some(self, size: int) -> bytes:
        async with self._read_lock:
            while True:
                state = self._read
                if state is _READ_OPEN or state is _FIN_RECEIVED or state is _LOST_AFTER_FIN:
                    recv = self._recv
                    if recv.size:
                        data: bytes = recv.read(size)
                        self._conn.consume(self.stream_id, len(data))
                        if recv.at_eof:
                            self._maybe_forget()
                        return data
                    if state is _READ_OPEN:
                        await self._wait_changed()
                        continue
                if READ_ERRORS[state] is StreamEnded:
                    self._maybe_forget()
                raise self._read_error()

    async def write(self, data: bytes) -> None:
        """Send ``data``; waits while the stream's unacknowledged send buffer is full.

        Raises what ``WRITE_ERRORS`` says (``MuxedStreamReset`` after a peer reset whatever it
        says), and ``TimeoutError`` past the write deadline.
        """
        if not data:
            self._check_writable()
            return
        await self._with_deadline(self.write_deadline, "write", lambda: self._write_all(data))

    def _check_writable(self) -> None:
        if self._write is not _WRITE_OPEN or self._read is _RESET_BY_PEER:
            raise self._write_error()

    async def _write_all(self, data: bytes) -> None:
        config = self._conn.config
        view = memoryview(data)
        async with self._write_lock:
            offset = 0
            while offset < len(view):
                while True:
                    self._check_writable()
                    if self._conn.send_buffer_size(self.stream_id) < config.write_buffer_limit:
                        break
                    self._conn.wake_when_writable(self)
                    await self._wait_changed()
                # A write that fits one chunk goes to the engine as is (the engine copies it
                # into its send queue anyway); only bigger ones are cut, one copy per chunk.
                if offset == 0 and len(view) <= config.write_chunk_size and type(data) is bytes:
                    chunk = data
                else:
                    chunk = bytes(view[offset : offset + config.write_chunk_size])
                self._conn.send_stream_data(self.stream_id, chunk, False)
                offset += len(chunk)

    async def close(self) -> None:
        """Half-close: send FIN; the read side stays open (yamux semantics)."""
        await self.close_write()

    async def close_write(self) -> None:
        """Send FIN after any queued data. Idempotent; a no-op on a dead stream."""
        was = self._write
        if not self._enter_write(CLOSE_WRITE):
            return
        if was is WriteState.OPEN:
            # Also after the peer's reset (its direction only): the FIN ends ours, so the
            # stream is done on both sides and the session can let it go.
            self._conn.send_stream_data(self.stream_id, b"", True)
        self._notify()
        self._maybe_forget()

    async def close_read(self, error_code: int = 0) -> None:
        """Stop reading: STOP_SENDING if more data may come, drop what is buffered."""
        was = self._read
        if was in (ReadState.CLOSED, ReadState.RESET, ReadState.STALLED):
            return
        self._enter_read(CLOSE_READ)
        self._drop_buffered()
        if was is ReadState.OPEN:
            self._conn.stop_sending(self.stream_id, error_code)
        self._notify()
        self._maybe_forget()

    async def reset(self, error_code: int = 0) -> None:
        """Abort both directions with a WebTransport application ``error_code``."""
        read, write = self._read, self._write
        self._enter_read(RESET_READ)
        self._enter_write(RESET_WRITE)
        self._drop_buffered()
        if read is ReadState.OPEN:
            self._conn.stop_sending(self.stream_id, error_code)
        if write is WriteState.OPEN or (
            # FIN sent but maybe not delivered: a reset still tells the peer to give up.
            write is WriteState.FIN_SENT and read is not ReadState.RESET_BY_PEER
        ):
            self._conn.reset_stream(self.stream_id, error_code)
        self._notify()
        self._conn.forget_stream(self.stream_id)

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

    def _enter_read(self, table: dict[ReadState, ReadState], why: str = "") -> bool:
        """Follow ``table`` from the read state (False: it stays); ``why`` details the new
        state's error (its reason or code), kept from a loss after the FIN."""
        old = self._read
        new = table.get(old)
        if new is None:
            return False
        if old is not ReadState.LOST_AFTER_FIN:  # else: the loss, which a reader now learns
            self._read_why = why
        self._read = new
        return True

    def _enter_write(self, table: dict[WriteState, WriteState], why: str = "") -> bool:
        new = table.get(self._write)
        if new is None:
            return False
        self._write, self._write_why = new, why
        return True

    def _read_error(self) -> Exception:
        state = self._read
        error = READ_ERRORS[state]
        assert error is not None
        if error is StreamEnded:
            return error(f"stream {self.stream_id}: end of stream")
        if state is ReadState.CLOSED or state is ReadState.RESET:
            return error(f"stream {self.stream_id} closed for reading")
        return error(self._read_why)

    def _write_error(self) -> Exception:
        if self._read is ReadState.RESET_BY_PEER:
            return MuxedStreamReset(self._read_why)
        state = self._write
        error = WRITE_ERRORS[state]
        assert error is not None
        if state is WriteState.FIN_SENT:
            return error(f"stream {self.stream_id} closed for writing")
        if state is WriteState.RESET:
            return error(f"stream {self.stream_id} was reset")
        return error(self._write_why)

    def _drop_buffered(self) -> None:
        dropped = self._recv.clear()
        if dropped:
            self._conn.consume(self.stream_id, dropped)

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

    def _maybe_forget(self) -> None:
        """Drop the host's reference once neither direction can carry data any more."""
        read = self._read
        read_over = read is not ReadState.OPEN and not (
            read is ReadState.FIN_RECEIVED and self._recv.size
        )
        if read_over and self._write is not WriteState.OPEN:
            self._conn.forget_stream(self.stream_id)
