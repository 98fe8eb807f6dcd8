"""Hold stream data back from qh3's native core until its congestion window can carry it.

Why (qh3 2.1.0, ``src/quic/connection.rs``, ``ConnectionCore::poll_transmit``): once the
congestion window is full (``cwnd - bytes_in_flight < max_datagram_size``) while stream frames
reserved earlier are still unbuilt (``pending_streams`` non-empty), ``poll_transmit`` returns
nothing, and the ACK that ``queue_due_ack`` has already committed (clearing its ACK deadline, so
no ACK timer is left) waits in the packet builder's FIFO queue behind those stream frames. The
ACK-only bypass applies only when no stream reservation is pending. When both ends are in that
state (both send, e.g. echoes), neither ever acknowledges the other: only PTO probes move, each
carries the oldest queued stream frame (not the ACK) and consumes one reservation, up to 16 are
reserved at a time, and the PTO backs off exponentially, so a connection stalls for seconds to
minutes (0-2 datagrams/s). A long-pending reservation also lets a stream finish and be removed
before its frame is committed, which is qh3's "reserved stream is missing" ValueError.

The workaround never lets the core queue more unsent stream data than its free congestion
window can carry (with a margin for framing and one datagram), so every reservation it makes is
built before the window closes and a due ACK always finds a packet. The rest waits here, per
stream, and is handed over (round-robin) each time the engine is asked for datagrams, i.e.
after every receive (acknowledgements free the window) and every timer.

Sans-IO and engine-free: the caller passes the core's window numbers in.
"""

from __future__ import annotations

from ..._errors import EngineError

__all__ = ["SendGate", "send_budget"]

# Bytes the core may not fill with new stream data: one full datagram (the window must keep
# room for the last reservation's packet) plus per-packet framing (header, AEAD tag, frame
# headers: about 64 of every 1452 bytes, so 1/16 of the window is generous).
_DATAGRAM_MARGIN = 1500


def send_budget(congestion_window: int, bytes_in_flight: int, unsent: int) -> int:
    """New stream bytes the core can take now without a reservation outliving the window.

    ``unsent`` is what the core already holds for first transmission. When nothing is in
    flight and nothing is queued, at least one datagram's worth is allowed, so a window at its
    minimum (two datagrams) still makes progress.
    """
    free = congestion_window - bytes_in_flight
    budget = free - _DATAGRAM_MARGIN - free // 16 - unsent
    if budget <= 0 and bytes_in_flight == 0 and unsent == 0:
        return _DATAGRAM_MARGIN - 64
    return max(budget, 0)


class _Held:
    __slots__ = ("data", "fin")

    def __init__(self) -> None:
        self.data = bytearray()
        self.fin = False


class SendGate:
    """Per-stream bytes (and FIN) written by the application but not yet given to the core."""

    __slots__ = ("_streams", "total")

    def __init__(self) -> None:
        self._streams: dict[int, _Held] = {}  # insertion order is the round-robin order
        self.total = 0

    def __len__(self) -> int:
        """Streams with something held."""
        return len(self._streams)

    def holds(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def held_bytes(self, stream_id: int) -> int:
        held = self._streams.get(stream_id)
        return 0 if held is None else len(held.data)

    def hold(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue ``data`` (and the FIN) behind what ``stream_id`` already holds."""
        held = self._streams.get(stream_id)
        if held is None:
            held = self._streams[stream_id] = _Held()
        elif held.fin:
            raise EngineError(f"stream {stream_id}: write after the end of the stream")
        held.data += data
        held.fin = held.fin or end_stream
        self.total += len(data)

    def drop(self, stream_id: int) -> None:
        """Forget what ``stream_id`` holds (it was reset or can no longer send)."""
        held = self._streams.pop(stream_id, None)
        if held is not None:
            self.total -= len(held.data)

    def clear(self) -> None:
        self._streams.clear()
        self.total = 0

    def release(self, budget: int) -> list[tuple[int, bytes, bool]]:
        """Chunks ``(stream_id, data, end_stream)`` totalling at most ``budget`` bytes.

        Streams share the budget round-robin: each gets an equal part (at least one datagram's
        worth), a stream still holding data afterwards moves to the back. A FIN with no data
        left is released whatever the budget.
        """
        streams = self._streams
        if not streams:
            return []
        out: list[tuple[int, bytes, bool]] = []
        share = max(budget // len(streams), _DATAGRAM_MARGIN - 64)
        for stream_id in list(streams):
            held = streams[stream_id]
            if held.data and budget <= 0:
                break
            n = min(len(held.data), share, budget)
            chunk = bytes(held.data[:n])
            del held.data[:n]
            budget -= n
            self.total -= n
            rest = bool(held.data)
            out.append((stream_id, chunk, held.fin and not rest))
            del streams[stream_id]
            if rest:
                streams[stream_id] = held  # to the back of the queue
        return out
