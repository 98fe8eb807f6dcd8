"""Hold back a stream's lone FIN from qh3's native core until the stream's data is acknowledged.

Why (qh3 2.1.0, ``src/quic/stream.rs``, ``SendStream::on_data_delivery``): a FIN the core sends
after the stream's data went out travels as a zero-length STREAM frame. When that frame is
declared lost (or copied into a PTO probe) while some of the stream's data is still
unacknowledged, the core re-queues the frame's byte range ``pending.add(final, final)``, which is
empty and fails, and returns before it marks the FIN pending again; the connection ignores the
error. The FIN is then never sent again: the peer gets every byte but never the end of the stream
and waits until the connection idles out. Browsers made it common (Chromium drops bursts of
datagrams at its socket, so the last data and the FIN right after it are lost together), as did
lossy paths (``tests/engine/test_qh3_lost_fin.py`` reproduces it with two bare engines).

A lone FIN is harmless once the stream's data is acknowledged: its loss then re-queues it. So
the adapter gives the core a FIN without data only when that holds, and holds it here otherwise:

* a FIN that can ride with data (the core still has unsent bytes of the stream and no frame
  reservation can be pending) goes at once, in the last data frame;
* so does one whose stream never sent data, or whose data is acknowledged for certain (nothing
  in flight and no loss since the data went out);
* otherwise it waits for clean *rounds*: a round lasts at least one smoothed RTT and ends when
  every packet that was in flight at its start is resolved; it is clean when no packet was
  declared lost meanwhile (any loss restarts the count). After one clean round the data sent
  before it is acknowledged. If a loss happened since the stream's data went out, a
  retransmission may still have been unsent when the round began: then it needs two, the first
  for the retransmission to be sent and the second for it to be acknowledged;
* whatever happens, a held FIN leaves after ``hold_limit`` (many RTTs: its data has long been
  retransmitted and acknowledged by then, unless the path loses nearly everything).

Sans-IO and engine-free: the caller passes times, the core's loss count and packet numbers in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FinHold"]

# A round lasts at least this long even when the RTT estimate is smaller (or unknown).
MIN_ROUND = 0.001
# A held FIN leaves after max(HOLD_LIMIT_FLOOR, HOLD_LIMIT_RTTS x smoothed RTT) whatever the rounds.
HOLD_LIMIT_FLOOR = 1.0
HOLD_LIMIT_RTTS = 16

# () -> (lowest, highest) packet number in flight, or None when nothing is.
InFlight = Callable[[], "tuple[int, int] | None"]


@dataclass
class _Held:
    since: float  # when the application asked for the FIN
    needs: int  # clean rounds it waits for (1 or 2)
    joined: int  # the round running when it was held (that one does not count)
    clean: int = 0


@dataclass
class _Round:
    number: int
    start: float
    barrier: int | None  # highest packet number in flight at the start (None: nothing was)
    losses: int  # the core's loss count at the start


class FinHold:
    """FINs of one connection waiting for their stream's data to be acknowledged."""

    __slots__ = ("_held", "_losses_at_write", "_round", "_rounds")

    def __init__(self) -> None:
        self._losses_at_write: dict[int, int] = {}  # stream -> core loss count at its last data
        self._held: dict[int, _Held] = {}
        self._round: _Round | None = None
        self._rounds = 0

    def __len__(self) -> int:
        """FINs held."""
        return len(self._held)

    def holds(self, stream_id: int) -> bool:
        return stream_id in self._held

    def wrote(self, stream_id: int, losses: int) -> None:
        """Data of ``stream_id`` went to the core (``losses``: the core's loss count now)."""
        self._losses_at_write[stream_id] = losses

    def forget(self, stream_id: int) -> None:
        """The stream's FIN went to the core, or the stream was reset: nothing more to track."""
        self._losses_at_write.pop(stream_id, None)
        self._held.pop(stream_id, None)

    def clear(self) -> None:
        self._losses_at_write.clear()
        self._held.clear()
        self._round = None

    def hold_if_needed(
        self,
        stream_id: int,
        now: float,
        *,
        losses: int,
        unsent: int,
        reservation_possible: bool,
        in_flight: InFlight,
    ) -> bool:
        """Decide about a FIN without data: True if it is held here, False if it may go now.

        ``unsent``: bytes of the stream the core has not sent once; ``reservation_possible``:
        the core's last transmit ended with its congestion window full, so a frame of this
        stream may be reserved without the FIN (qh3 builds reservations made earlier first).
        """
        if stream_id in self._held:
            return True
        losses_at_write = self._losses_at_write.get(stream_id)
        if losses_at_write is None:
            return False  # no data ever sent: the FIN is at offset 0 and nothing can be lost
        if unsent and not reservation_possible:
            self.forget(stream_id)
            return False  # rides in the frame that carries the last unsent bytes
        needs = 2 if unsent or losses != losses_at_write else 1
        if needs == 1 and in_flight() is None:
            self.forget(stream_id)
            return False  # sent, nothing in flight, nothing lost: acknowledged
        joined = self._round.number if self._round is not None else 0
        self._held[stream_id] = _Held(since=now, needs=needs, joined=joined)
        return True

    def due(self, now: float, *, losses: int, rtt: float, in_flight: InFlight) -> list[int]:
        """Advance the rounds; the streams whose FIN may go to the core now (forgotten here).

        Call after every transmit while FINs are held (acknowledgements and losses arrive with
        receives, time passes with timers): ``losses`` is the core's loss count, ``rtt`` its
        smoothed RTT, ``in_flight`` reads its packets in flight (called only when needed).
        """
        if not self._held:
            self._round = None
            return []
        current = self._round
        if current is None:
            self._start_round(now, losses, in_flight)
        elif losses != current.losses:
            for held in self._held.values():
                held.clean = 0
            self._start_round(now, losses, in_flight)
        elif now >= current.start + max(rtt, MIN_ROUND) and _resolved(current, in_flight):
            for held in self._held.values():
                if held.joined < current.number:
                    held.clean += 1
            self._start_round(now, losses, in_flight)
        limit = hold_limit(rtt)
        ready = [
            stream_id
            for stream_id, held in self._held.items()
            if held.clean >= held.needs or now - held.since >= limit
        ]
        for stream_id in ready:
            self.forget(stream_id)
        return ready

    def deadline(self, now: float, rtt: float) -> float | None:
        """When ``due`` must run again even if nothing arrives (None: no FIN held).

        A round whose minimum length has passed waits for acknowledgements and losses, which
        come with receives and the core's own timers, so only a future round end counts.
        """
        if not self._held:
            return None
        expiry = min(held.since for held in self._held.values()) + hold_limit(rtt)
        current = self._round
        if current is not None:
            round_end = current.start + max(rtt, MIN_ROUND)
            if now < round_end < expiry:
                return round_end
        return expiry

    def _start_round(self, now: float, losses: int, in_flight: InFlight) -> None:
        self._rounds += 1
        span = in_flight()
        barrier = None if span is None else span[1]
        self._round = _Round(self._rounds, now, barrier, losses)


def hold_limit(rtt: float) -> float:
    """How long a FIN may be held at most (seconds)."""
    return max(HOLD_LIMIT_FLOOR, HOLD_LIMIT_RTTS * rtt)


def _resolved(current: _Round, in_flight: InFlight) -> bool:
    """Every packet in flight at the round's start is acknowledged or declared lost."""
    if current.barrier is None:
        return True
    span = in_flight()
    return span is None or span[0] > current.barrier
