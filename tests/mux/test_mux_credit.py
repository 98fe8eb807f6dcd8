"""ReceiveCredit and SendCredit unit tests, run against both twins (``mux_module``)."""

from __future__ import annotations

import random
from types import ModuleType

import pytest

from py_libp2p_webtransport.constants import VARINT_MAX
from py_libp2p_webtransport.errors import FlowControlError

WINDOWS = [4, 16, 100, 1000, 65_536, 10 * 1024 * 1024]


# --- ReceiveCredit ------------------------------------------------------------------------------


def test_initial_state(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(1000)
    assert (credit.limit, credit.window, credit.max_window) == (1000, 1000, 1000)
    assert (credit.received, credit.consumed, credit.buffered) == (0, 0, 0)
    assert credit.update_due is False


@pytest.mark.parametrize("window", WINDOWS)
def test_update_fires_between_a_quarter_and_a_half_window(
    mux_module: ModuleType, window: int
) -> None:
    """A reader consuming in small steps gets updates after ¼..½ of the window each time."""
    credit = mux_module.ReceiveCredit(window)
    step = max(1, window // 64)
    last_update_at = 0
    updates = 0
    while updates < 6:
        credit.on_received(credit.limit)  # the sender uses all the credit it has
        assert credit.buffered <= window
        new_limit = credit.on_consumed(min(step, credit.buffered))
        if new_limit is None:
            assert credit.consumed - last_update_at < window / 2
            continue
        since = credit.consumed - last_update_at
        assert window / 4 <= since <= window / 2, (window, since)
        assert new_limit == credit.limit == credit.consumed + window
        assert credit.update_due is False
        last_update_at = credit.consumed
        updates += 1


def test_threshold_one_half(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100, update_threshold=0.5)
    credit.on_received(100)
    results = [credit.on_consumed(1) for _ in range(60)]
    first = next(i for i, r in enumerate(results) if r is not None) + 1
    assert first == 50  # exactly half the window consumed
    assert results[first - 1] == 150


def test_update_due_tracks_consumption(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100)
    credit.on_received(100)
    credit.on_consumed(24)
    assert credit.update_due is False
    assert credit.on_consumed(1) == 125  # a quarter of the window consumed
    assert credit.update_due is False


def test_consuming_a_whole_window_at_once(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(1000)
    credit.on_received(1000)
    assert credit.on_consumed(1000) == 2000
    assert credit.buffered == 0


def test_receiving_beyond_limit_raises(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100)
    credit.on_received(100)  # exactly at the limit is allowed
    with pytest.raises(FlowControlError):
        credit.on_received(101)
    assert (credit.received, credit.limit) == (100, 100)


def test_received_is_the_highest_offset(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100)
    credit.on_received(60)
    credit.on_received(20)  # a retransmission or reordered frame
    assert credit.received == 60
    credit.on_received(60)
    assert credit.received == 60


def test_consuming_more_than_received_raises(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100)
    credit.on_received(10)
    credit.on_consumed(6)
    with pytest.raises(FlowControlError):
        credit.on_consumed(5)
    assert (credit.consumed, credit.buffered) == (6, 4)
    credit.on_consumed(4)
    assert credit.buffered == 0


def test_nothing_received_nothing_consumable(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100)
    assert credit.on_consumed(0) is None
    with pytest.raises(FlowControlError):
        credit.on_consumed(1)


def test_limit_grows_with_consumption_not_arrival(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(1000, max_window=4000)
    credit.on_received(1000)
    assert credit.limit == 1000  # arrival alone grants nothing
    with pytest.raises(FlowControlError):
        credit.on_received(1001)


def test_set_window_clamps_to_max(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100, max_window=400)
    credit.set_window(10_000)
    assert credit.window == 400
    credit.on_received(100)
    new_limit = credit.on_consumed(100)
    assert new_limit is not None
    assert new_limit - credit.consumed <= 400


@pytest.mark.parametrize("requested", [150, 400, 10**12])
def test_never_grants_beyond_max_window(mux_module: ModuleType, requested: int) -> None:
    credit = mux_module.ReceiveCredit(100, max_window=400)
    for _ in range(50):
        credit.set_window(requested)
        credit.on_received(credit.limit)
        credit.on_consumed(credit.buffered)
        assert credit.limit - credit.consumed <= 400
        assert credit.buffered <= 400


def test_shrinking_the_window_never_takes_back_credit(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(1000)
    credit.on_received(1000)
    credit.set_window(100)
    assert credit.window == 100
    limits = [credit.limit]
    for _ in range(1000):
        if credit.on_consumed(1) is not None:
            limits.append(credit.limit)
    assert limits == sorted(limits)
    assert limits[0] == 1000  # held until consumption passes the old limit - new window
    assert credit.limit == credit.consumed + 100


def test_limit_capped_at_varint_max(mux_module: ModuleType) -> None:
    window = 2**61
    credit = mux_module.ReceiveCredit(window)
    credit.on_received(window)
    credit.on_consumed(window)  # limit 2**62 would not fit a varint
    assert credit.limit == VARINT_MAX
    credit.on_received(VARINT_MAX)
    assert credit.on_consumed(VARINT_MAX - window) is None
    assert credit.limit == VARINT_MAX


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": 0},
        {"window": -1},
        {"window": VARINT_MAX + 1},
        {"window": 100, "max_window": 99},
        {"window": 100, "max_window": -5},
        {"window": 100, "update_threshold": 0.0},
        {"window": 100, "update_threshold": 1.0},
        {"window": 100, "update_threshold": float("nan")},
    ],
)
def test_receive_credit_rejects_bad_arguments(mux_module: ModuleType, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        mux_module.ReceiveCredit(**kwargs)


def test_receive_credit_rejects_bad_counts(mux_module: ModuleType) -> None:
    credit = mux_module.ReceiveCredit(100)
    credit.on_received(50)
    for bad in (-1, VARINT_MAX + 1, 2**80):
        with pytest.raises(ValueError):
            credit.on_received(bad)
        with pytest.raises(ValueError):
            credit.on_consumed(bad)
    for bad in (0, -3):
        with pytest.raises(ValueError):
            credit.set_window(bad)
    with pytest.raises(TypeError):
        credit.on_consumed(1.5)
    with pytest.raises(TypeError):
        mux_module.ReceiveCredit(100.0)
    assert (credit.received, credit.consumed, credit.window) == (50, 0, 100)


# --- SendCredit ---------------------------------------------------------------------------------


def test_send_credit_counts_down(mux_module: ModuleType) -> None:
    credit = mux_module.SendCredit(100)
    assert (credit.limit, credit.sent, credit.available, credit.blocked) == (100, 0, 100, False)
    credit.on_sent(60)
    assert (credit.sent, credit.available, credit.blocked) == (60, 40, False)
    credit.on_sent(40)
    assert (credit.available, credit.blocked) == (0, True)
    credit.on_sent(0)


def test_sending_beyond_limit_raises(mux_module: ModuleType) -> None:
    credit = mux_module.SendCredit(10)
    credit.on_sent(8)
    with pytest.raises(FlowControlError):
        credit.on_sent(3)
    assert credit.sent == 8


def test_limit_updates_only_grow(mux_module: ModuleType) -> None:
    credit = mux_module.SendCredit(10)
    credit.on_sent(10)
    assert credit.on_limit(5) is False
    assert credit.on_limit(10) is False
    assert (credit.limit, credit.blocked) == (10, True)
    assert credit.on_limit(25) is True
    assert (credit.limit, credit.available, credit.blocked) == (25, 15, False)


def test_zero_limit_starts_blocked(mux_module: ModuleType) -> None:
    credit = mux_module.SendCredit(0)
    assert credit.blocked is True
    with pytest.raises(FlowControlError):
        credit.on_sent(1)


def test_send_credit_rejects_bad_counts(mux_module: ModuleType) -> None:
    with pytest.raises(ValueError):
        mux_module.SendCredit(-1)
    with pytest.raises(ValueError):
        mux_module.SendCredit(VARINT_MAX + 1)
    credit = mux_module.SendCredit(10)
    for bad in (-1, 2**70):
        with pytest.raises(ValueError):
            credit.on_sent(bad)
        with pytest.raises(ValueError):
            credit.on_limit(bad)
    with pytest.raises(TypeError):
        credit.on_sent(1.0)
    assert (credit.sent, credit.limit) == (0, 10)


# --- RecvBuffer and ReceiveCredit together, as the session layer uses them ----------------------


@pytest.mark.parametrize("seed", range(4))
def test_slow_reader_holds_sender_to_one_window(mux_module: ModuleType, seed: int) -> None:
    """A sender using all its credit against a slow reader never overruns one window of memory."""
    rng = random.Random(seed)
    window = 4096
    buf = mux_module.RecvBuffer(limit=window)  # a hard cap equal to the window must never trip
    recv = mux_module.ReceiveCredit(window)
    send = mux_module.SendCredit(window)
    payload = rng.randbytes(200_000)
    sent = 0
    got = bytearray()
    while len(got) < len(payload):
        # Sender: packets of up to 1200 bytes while credit lasts.
        for _ in range(rng.randint(0, 6)):
            n = min(1200, send.available, len(payload) - sent)
            if n == 0:
                break
            send.on_sent(n)
            buf.append(payload[sent : sent + n])
            sent += n
            recv.on_received(sent)
        assert buf.size == recv.buffered <= window
        # Reader: a small, irregular read; the consumed bytes return credit to the sender.
        got += buf.read(rng.randint(0, 700))
        new_limit = recv.on_consumed(buf.take_consumed())
        if new_limit is not None:
            send.on_limit(new_limit)  # the MAX_STREAM_DATA frame arrives
    assert bytes(got) == payload
    assert recv.limit - recv.consumed <= window
