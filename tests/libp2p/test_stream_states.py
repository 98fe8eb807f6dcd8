"""Every (stream state, operation) pair of ``WebTransportStream``, against a table written out here.

Each setup reaches one read state and one write state through the stream's public event API (what
the connection calls) and its own operations; each operation is then run on a fresh stream in that
state. The expectation says what the operation raises (or that it returns, or waits), what it asks
the connection to put on the wire, and the states it leaves. The table is the specification of the
stream's state machine (``stream_state.py``): a change of semantics has to change a line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.stream_muxer.exceptions import MuxedStreamClosed, MuxedStreamReset

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.errors import StreamEnded
from py_libp2p_webtransport.stream import WebTransportStream
from py_libp2p_webtransport.stream_state import READ_ERRORS, WRITE_ERRORS, ReadState, WriteState

STALL = 0x77


@dataclass
class WireRecorder:
    """A ``StreamHost`` that records what the stream asks to send; writes are always welcome."""

    config: WebTransportConfig = field(default_factory=WebTransportConfig)
    wire: list[str] = field(default_factory=list)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        self.wire.append("FIN" if end_stream else "DATA")

    def consume(self, stream_id: int, n: int) -> None:
        pass

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.wire.append("RESET")

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        self.wire.append("STOP")

    def send_buffer_size(self, stream_id: int) -> int:
        return 0

    def wake_when_writable(self, stream: WebTransportStream) -> None:
        pass

    def forget_stream(self, stream_id: int) -> None:
        pass

    def get_remote_address(self) -> tuple[str, int]:
        return ("127.0.0.1", 1)


# setup name -> steps from a fresh stream, and the (read, write) states they reach
SETUPS: dict[str, tuple[list[tuple[Any, ...]], str, str]] = {
    "open": ([], "open", "open"),
    "fin-received": ([("on_data", b"", True)], "fin-received", "open"),
    "reset-by-peer": ([("on_reset", 3)], "reset-by-peer", "open"),
    "closed": ([("close_read",)], "closed", "open"),
    "reset": ([("reset",)], "reset", "reset"),
    "stalled": ([("on_data", b"x", False), ("on_stalled", STALL)], "stalled", "stalled"),
    "connection-lost": ([("on_connection_lost", "gone")], "connection-lost", "connection-lost"),
    "lost-after-fin": (
        [("on_data", b"", True), ("on_connection_lost", "gone")],
        "lost-after-fin",
        "connection-lost",
    ),
    "fin-sent": ([("close",)], "open", "fin-sent"),
    "stopped-by-peer": ([("on_stop_sending", 6)], "open", "stopped-by-peer"),
}

OPERATIONS = ["read", "write", "close", "close_read", "reset"]

Reset, Closed = MuxedStreamReset, MuxedStreamClosed
STALLED = "past stall_timeout (code 0x77)"
# (setup, operation) -> (raises: (class, message part) | "returns" | "waits", wire, read, write)
EXPECTED: dict[tuple[str, str], tuple[Any, list[str], str, str]] = {
    # read: StreamEnded at the FIN, Reset for the peer/loss/stall, Closed after our own close
    ("open", "read"): ("waits", [], "open", "open"),
    ("fin-received", "read"): ((StreamEnded, "end of stream"), [], "fin-received", "open"),
    ("reset-by-peer", "read"): ((Reset, "reset by peer (code 3)"), [], "reset-by-peer", "open"),
    ("closed", "read"): ((Closed, "closed for reading"), [], "closed", "open"),
    ("reset", "read"): ((Closed, "closed for reading"), [], "reset", "reset"),
    ("stalled", "read"): ((Reset, STALLED), [], "stalled", "stalled"),
    ("connection-lost", "read"): ((Reset, "gone"), [], "connection-lost", "connection-lost"),
    ("lost-after-fin", "read"): (
        (StreamEnded, "end of stream"),
        [],
        "lost-after-fin",
        "connection-lost",
    ),
    ("fin-sent", "read"): ("waits", [], "open", "fin-sent"),
    ("stopped-by-peer", "read"): ("waits", [], "open", "stopped-by-peer"),
    # write: a peer's reset fails writes too; its STOP_SENDING fails only writes
    ("open", "write"): ("returns", ["DATA"], "open", "open"),
    ("fin-received", "write"): ("returns", ["DATA"], "fin-received", "open"),
    ("reset-by-peer", "write"): ((Reset, "reset by peer (code 3)"), [], "reset-by-peer", "open"),
    ("closed", "write"): ("returns", ["DATA"], "closed", "open"),
    ("reset", "write"): ((Closed, "was reset"), [], "reset", "reset"),
    ("stalled", "write"): ((Reset, STALLED), [], "stalled", "stalled"),
    ("connection-lost", "write"): ((Reset, "gone"), [], "connection-lost", "connection-lost"),
    ("lost-after-fin", "write"): ((Reset, "gone"), [], "lost-after-fin", "connection-lost"),
    ("fin-sent", "write"): ((Closed, "closed for writing"), [], "open", "fin-sent"),
    ("stopped-by-peer", "write"): (
        (Reset, "peer stopped reading (code 6)"),
        [],
        "open",
        "stopped-by-peer",
    ),
    # close (FIN): never raises; no FIN on an aborted stream
    ("open", "close"): ("returns", ["FIN"], "open", "fin-sent"),
    ("fin-received", "close"): ("returns", ["FIN"], "fin-received", "fin-sent"),
    ("reset-by-peer", "close"): ("returns", ["FIN"], "reset-by-peer", "fin-sent"),
    ("closed", "close"): ("returns", ["FIN"], "closed", "fin-sent"),
    ("reset", "close"): ("returns", [], "reset", "reset"),
    ("stalled", "close"): ("returns", [], "stalled", "stalled"),
    ("connection-lost", "close"): ("returns", [], "connection-lost", "fin-sent"),
    ("lost-after-fin", "close"): ("returns", [], "lost-after-fin", "fin-sent"),
    ("fin-sent", "close"): ("returns", [], "open", "fin-sent"),
    ("stopped-by-peer", "close"): ("returns", [], "open", "stopped-by-peer"),
    # close_read (STOP_SENDING while bytes may still come): never raises
    ("open", "close_read"): ("returns", ["STOP"], "closed", "open"),
    ("fin-received", "close_read"): ("returns", [], "closed", "open"),
    ("reset-by-peer", "close_read"): ("returns", [], "reset-by-peer", "open"),
    ("closed", "close_read"): ("returns", [], "closed", "open"),
    ("reset", "close_read"): ("returns", [], "reset", "reset"),
    ("stalled", "close_read"): ("returns", [], "stalled", "stalled"),
    ("connection-lost", "close_read"): ("returns", [], "connection-lost", "connection-lost"),
    ("lost-after-fin", "close_read"): ("returns", [], "connection-lost", "connection-lost"),
    ("fin-sent", "close_read"): ("returns", ["STOP"], "closed", "fin-sent"),
    ("stopped-by-peer", "close_read"): ("returns", ["STOP"], "closed", "stopped-by-peer"),
    # reset (STOP_SENDING and RESET_STREAM as far as each direction is open): never raises
    ("open", "reset"): ("returns", ["STOP", "RESET"], "reset", "reset"),
    ("fin-received", "reset"): ("returns", ["RESET"], "reset", "reset"),
    ("reset-by-peer", "reset"): ("returns", ["RESET"], "reset-by-peer", "reset"),
    ("closed", "reset"): ("returns", ["RESET"], "reset", "reset"),
    ("reset", "reset"): ("returns", [], "reset", "reset"),
    ("stalled", "reset"): ("returns", [], "stalled", "stalled"),
    ("connection-lost", "reset"): ("returns", [], "connection-lost", "reset"),
    ("lost-after-fin", "reset"): ("returns", [], "connection-lost", "reset"),
    ("fin-sent", "reset"): ("returns", ["STOP", "RESET"], "reset", "reset"),
    ("stopped-by-peer", "reset"): ("returns", ["STOP"], "reset", "stopped-by-peer"),
}


async def reach(setup: str) -> tuple[WebTransportStream, WireRecorder]:
    host = WireRecorder()
    stream = WebTransportStream(host, 4, is_initiator=True)
    steps, read, write = SETUPS[setup]
    for name, *args in steps:
        result = getattr(stream, name)(*args)
        if result is not None:
            await result
    assert stream.describe().startswith(f"read={read} write={write} "), stream.describe()
    host.wire.clear()
    return stream, host


async def run(stream: WebTransportStream, operation: str) -> Any:
    """What ``operation`` did: the exception, "returns", or "waits" (it blocked)."""
    outcome: list[Any] = []

    async def attempt() -> None:
        try:
            if operation == "read":
                await stream.read(10)
            elif operation == "write":
                await stream.write(b"w")
            else:
                await getattr(stream, operation)()
            outcome.append("returns")
        except Exception as error:
            outcome.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(attempt)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return outcome[0] if outcome else "waits"


def test_the_table_covers_every_pair() -> None:
    assert set(EXPECTED) == {(s, o) for s in SETUPS for o in OPERATIONS}
    reached = {(read, write) for _, read, write in SETUPS.values()}
    assert {read for read, _ in reached} == {state.value for state in ReadState}
    assert {write for _, write in reached} == {state.value for state in WriteState}


@pytest.mark.parametrize(("setup", "operation"), sorted(EXPECTED))
async def test_operation_in_state(setup: str, operation: str) -> None:
    stream, host = await reach(setup)
    raises, wire, read, write = EXPECTED[(setup, operation)]
    outcome = await run(stream, operation)
    if isinstance(raises, tuple):
        cls, message = raises
        assert type(outcome) is cls and message in str(outcome), repr(outcome)
    else:
        assert outcome == raises
    assert host.wire == wire
    assert stream.describe().startswith(f"read={read} write={write} "), stream.describe()


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_error_tables_agree_with_the_expectation(setup: str) -> None:
    _, read, write = SETUPS[setup]
    read_raises = EXPECTED[(setup, "read")][0]
    want = read_raises[0] if isinstance(read_raises, tuple) else None
    assert READ_ERRORS[ReadState(read)] is want
    if read != "reset-by-peer":  # a peer's reset overrides the write table (see above)
        write_raises = EXPECTED[(setup, "write")][0]
        want = write_raises[0] if isinstance(write_raises, tuple) else None
        assert WRITE_ERRORS[WriteState(write)] is want


async def test_bytes_that_arrived_with_the_fin_survive_the_connection() -> None:
    """Every byte of a finished stream had arrived: losing the connection afterwards must not
    turn unread bytes into a clean, shorter stream (a silent loss). An unfinished stream's
    bytes go, and a read reports the loss."""
    finished = WebTransportStream(WireRecorder(), 4, is_initiator=True)
    finished.on_data(b"all of it", True)
    finished.on_connection_lost("gone")
    assert await finished.read(100) == b"all of it"
    with pytest.raises(StreamEnded):
        await finished.read(100)

    unfinished = WebTransportStream(WireRecorder(), 8, is_initiator=True)
    unfinished.on_data(b"half of it", False)
    unfinished.on_connection_lost("gone")
    with pytest.raises(Reset, match="gone"):
        await unfinished.read(100)
