"""``engine/qh3_fin_hold.FinHold`` on its own: which FINs wait, and when rounds let them go."""

from __future__ import annotations

from py_libp2p_webtransport.engine.qh3.fin_hold import FinHold, hold_limit

RTT = 0.01


class Flight:
    """Packet numbers in flight, as the core reports them (None: nothing is)."""

    def __init__(self, low: int | None = None, high: int | None = None) -> None:
        self.span = None if low is None else (low, high if high is not None else low)
        self.reads = 0

    def __call__(self) -> tuple[int, int] | None:
        self.reads += 1
        return self.span


def held_fin(fins: FinHold, *, losses: int = 0, unsent: int = 0, flight: Flight) -> bool:
    return fins.hold_if_needed(
        4, 0.0, losses=losses, unsent=unsent, reservation_possible=False, in_flight=flight
    )


def test_a_stream_that_sent_nothing_closes_at_once() -> None:
    assert not held_fin(FinHold(), flight=Flight(1, 9))


def test_a_fin_that_can_ride_with_unsent_data_goes_at_once() -> None:
    fins = FinHold()
    fins.wrote(4, losses=0)
    assert not held_fin(fins, unsent=100, flight=Flight(1, 9))
    assert len(fins) == 0


def test_unsent_data_behind_a_possible_reservation_waits_two_rounds() -> None:
    fins = FinHold()
    fins.wrote(4, losses=0)
    assert fins.hold_if_needed(
        4, 0.0, losses=0, unsent=100, reservation_possible=True, in_flight=Flight(1, 9)
    )
    flight = Flight(1, 9)
    fins.due(0.0, losses=0, rtt=RTT, in_flight=flight)  # round 1 starts, barrier 9
    flight.span = (10, 12)
    assert fins.due(RTT, losses=0, rtt=RTT, in_flight=flight) == []  # one clean round of two
    flight.span = None
    assert fins.due(2 * RTT, losses=0, rtt=RTT, in_flight=flight) == [4]


def test_data_acknowledged_for_certain_lets_the_fin_go() -> None:
    fins = FinHold()
    fins.wrote(4, losses=3)
    assert not held_fin(fins, losses=3, flight=Flight())  # nothing in flight, no loss since


def test_a_fin_waits_for_one_clean_round() -> None:
    fins = FinHold()
    fins.wrote(4, losses=0)
    flight = Flight(5, 9)
    assert held_fin(fins, flight=flight)
    assert fins.due(0.0, losses=0, rtt=RTT, in_flight=flight) == []  # round starts: barrier 9
    flight.span = (9, 12)
    assert fins.due(RTT, losses=0, rtt=RTT, in_flight=flight) == []  # packet 9 still in flight
    flight.span = (10, 12)
    assert fins.due(RTT / 2, losses=0, rtt=RTT, in_flight=flight) == []  # too short
    assert fins.due(RTT, losses=0, rtt=RTT, in_flight=flight) == [4]
    assert len(fins) == 0 and not fins.holds(4)


def test_a_loss_during_the_round_starts_over() -> None:
    fins = FinHold()
    fins.wrote(4, losses=0)
    flight = Flight(5, 9)
    assert held_fin(fins, flight=flight)
    fins.due(0.0, losses=0, rtt=RTT, in_flight=flight)
    flight.span = (10, 20)
    assert fins.due(RTT, losses=1, rtt=RTT, in_flight=flight) == []  # lost: new round, barrier 20
    flight.span = (15, 25)
    assert fins.due(2 * RTT, losses=1, rtt=RTT, in_flight=flight) == []
    flight.span = (21, 25)
    assert fins.due(2 * RTT, losses=1, rtt=RTT, in_flight=flight) == [4]


def test_a_loss_since_the_data_went_out_needs_two_rounds() -> None:
    fins = FinHold()
    fins.wrote(4, losses=0)
    flight = Flight(5, 9)
    assert held_fin(fins, losses=2, flight=flight)  # a retransmission may still be unsent
    fins.due(0.0, losses=2, rtt=RTT, in_flight=flight)
    flight.span = (10, 14)
    assert fins.due(RTT, losses=2, rtt=RTT, in_flight=flight) == []  # round 1 clean
    flight.span = (15, 16)
    assert fins.due(2 * RTT, losses=2, rtt=RTT, in_flight=flight) == [4]  # round 2 clean


def test_a_fin_held_during_a_round_waits_for_the_next_one() -> None:
    fins = FinHold()
    for stream in (4, 8):
        fins.wrote(stream, losses=0)
    flight = Flight(5, 9)
    assert fins.hold_if_needed(
        4, 0.0, losses=0, unsent=0, reservation_possible=False, in_flight=flight
    )
    fins.due(0.0, losses=0, rtt=RTT, in_flight=flight)  # round 1: barrier 9
    flight.span = (8, 12)
    assert fins.hold_if_needed(
        8, RTT / 2, losses=0, unsent=0, reservation_possible=False, in_flight=flight
    )
    flight.span = (13, 14)
    assert fins.due(RTT, losses=0, rtt=RTT, in_flight=flight) == [4]  # round 2 starts: barrier 14
    flight.span = None
    assert fins.due(2 * RTT, losses=0, rtt=RTT, in_flight=flight) == [8]


def test_a_fin_leaves_after_the_hold_limit_whatever_the_losses() -> None:
    fins = FinHold()
    fins.wrote(4, losses=0)
    flight = Flight(5, 9)
    assert held_fin(fins, flight=flight)
    limit = hold_limit(RTT)
    assert limit >= 1.0
    losses = 0
    now = 0.0
    while now < limit:
        losses += 1  # every round is broken by a loss
        assert fins.due(now, losses=losses, rtt=RTT, in_flight=flight) == []
        now += RTT
    assert fins.due(limit, losses=losses + 1, rtt=RTT, in_flight=flight) == [4]


def test_deadline_wakes_for_the_round_end_and_the_limit_only() -> None:
    fins = FinHold()
    assert fins.deadline(0.0, RTT) is None
    fins.wrote(4, losses=0)
    flight = Flight(5, 9)
    assert held_fin(fins, flight=flight)
    fins.due(0.0, losses=0, rtt=RTT, in_flight=flight)
    assert fins.deadline(0.0, RTT) == RTT  # the round's minimum length
    # Past it, the round waits for acknowledgements (receives), not for a timer: no busy loop.
    assert fins.deadline(2 * RTT, RTT) == hold_limit(RTT)


def test_reads_packets_in_flight_only_when_a_round_needs_them() -> None:
    fins = FinHold()
    flight = Flight(5, 9)
    assert fins.due(0.0, losses=0, rtt=RTT, in_flight=flight) == []
    assert flight.reads == 0  # nothing held: nothing to read


def test_forget_and_clear_drop_held_fins() -> None:
    fins = FinHold()
    for stream in (4, 8):
        fins.wrote(stream, losses=0)
        assert fins.hold_if_needed(
            stream, 0.0, losses=0, unsent=0, reservation_possible=False, in_flight=Flight(1, 2)
        )
    fins.forget(4)
    assert not fins.holds(4) and fins.holds(8)
    fins.clear()
    assert len(fins) == 0
    # A reset stream's later FIN (none should come) would not be held: nothing is known of it.
    assert not held_fin(fins, flight=Flight(1, 2))
