"""CertManager: rotation schedule under an injected clock, overlap, determinism across restarts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_pair
from libp2p.crypto.rsa import create_new_key_pair as rsa_pair
from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1_pair

from py_libp2p_webtransport.certs import (
    CertManager,
    certhash_schedule,
    derive_certificate,
    next_rotation_after,
)
from py_libp2p_webtransport.multiaddr import certhash_multihash

HOST_KEY = ed25519_pair(b"\x21" * 32).private_key
DAY = 86_400.0
HOUR = 3_600.0
FOURTEEN_DAYS = timedelta(days=14).total_seconds()
T0 = 1_790_000_000.0


class FakeClock:
    """A settable clock; CertManager reads it through the injected callable."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _check_invariants(manager: CertManager, now: float) -> None:
    current = manager.current_certificate()
    # Valid now, with at least the 1 h skew allowance on both sides, for at most 14 days.
    assert current.not_before <= now - HOUR
    assert now + HOUR <= current.not_after
    assert current.not_after - current.not_before <= FOURTEEN_DAYS
    advertised = manager.advertised_certhashes()
    assert len(advertised) == 2 and advertised[0] == current.certhash
    assert advertised[0] != advertised[1]
    noise = manager.noise_certhashes()
    assert len(noise) == 3 and noise[1:] == advertised
    assert now < manager.next_rotation
    der, key_der = manager.current()
    assert certhash_multihash(der) == current.certhash and key_der == current.key_der


@settings(max_examples=150, deadline=None)
@given(now=st.floats(min_value=1.0e9, max_value=4.0e9, allow_nan=False))
def test_current_certificate_always_valid_now(now: float) -> None:
    _check_invariants(CertManager(HOST_KEY, clock=FakeClock(now)), now)


def test_next_certificate_overlaps_current() -> None:
    manager = CertManager(HOST_KEY, clock=FakeClock(T0))
    current = manager.current_certificate()
    nxt = derive_certificate(HOST_KEY, int(current.not_after * 1000) - 2 * 3_600_000)
    # The next certificate starts 2 h before the current one ends (go's schedule).
    assert manager.advertised_certhashes()[1] == nxt.certhash
    assert current.not_after - nxt.not_before == 2 * HOUR


def test_200_daily_steps_always_share_a_certhash() -> None:
    # go: TestServerRotatesCertCorrectlyAfterSteps.
    clock = FakeClock(T0)
    manager = CertManager(HOST_KEY, clock=clock)
    previous = manager.advertised_certhashes()
    rotations = 0
    for _ in range(200):
        clock.now += DAY
        rotations += manager.maybe_rotate()
        advertised = manager.advertised_certhashes()
        assert set(previous) & set(advertised), "consecutive advertised sets must overlap"
        # A client holding yesterday's address passes the Noise subset check today.
        assert set(previous) <= set(manager.noise_certhashes())
        _check_invariants(manager, clock.now)
        previous = advertised
    # 200 days of 13 d 22 h buckets: 14 or 15 rotations.
    assert rotations in (14, 15)


def test_maybe_rotate_fires_exactly_at_next_rotation() -> None:
    clock = FakeClock(T0)
    manager = CertManager(HOST_KEY, clock=clock)
    before = manager.advertised_certhashes()
    due = manager.next_rotation
    clock.now = due - 0.001
    assert manager.maybe_rotate() is False
    assert manager.advertised_certhashes() == before
    clock.now = due
    assert manager.maybe_rotate() is True
    assert manager.maybe_rotate() is False
    after = manager.advertised_certhashes()
    assert after[0] == before[1], "the old next certificate becomes the current one"
    assert manager.noise_certhashes()[0] == before[0], "the old current is kept as last"
    assert manager.next_rotation > due


def test_current_rotates_lazily_for_new_connections() -> None:
    # The listener asks for current() per connection; it must never serve an expired cert.
    clock = FakeClock(T0)
    manager = CertManager(HOST_KEY, clock=clock)
    old_der, _ = manager.current()
    clock.now = manager.next_rotation + 10 * DAY
    new_der, _ = manager.current()
    assert new_der != old_der
    _check_invariants(manager, clock.now)


def test_rotation_done_by_current_is_still_reported_once() -> None:
    clock = FakeClock(T0)
    manager = CertManager(HOST_KEY, clock=clock)
    old = manager.advertised_certhashes()
    clock.now = manager.next_rotation
    manager.current()  # a connection arrives first and triggers the switch
    assert manager.maybe_rotate() is True, "the listener must still learn the addresses changed"
    assert manager.maybe_rotate() is False
    assert manager.advertised_certhashes() != old


def test_every_read_rotates_and_tells_each_subscriber_once() -> None:
    """Whichever read notices the new bucket (an address query here), every subscriber hears of
    it once, and sees the new state when it reads the manager from its callback."""
    clock = FakeClock(T0)
    manager = CertManager(HOST_KEY, clock=clock)
    old = manager.advertised_certhashes()
    seen: list[tuple[str, list[bytes]]] = []
    manager.subscribe(lambda: seen.append(("a", manager.advertised_certhashes())))
    manager.subscribe(lambda: seen.append(("b", manager.noise_certhashes()[1:])))
    clock.now = manager.next_rotation
    new = manager.advertised_certhashes()
    assert new[0] == old[1]
    assert seen == [("a", new), ("b", new)]
    manager.advertised_certhashes()
    manager.current()
    assert len(seen) == 2, "no second call without a second rotation"


def test_unsubscribed_callback_is_not_called() -> None:
    clock = FakeClock(T0)
    manager = CertManager(HOST_KEY, clock=clock)
    calls: list[int] = []

    def callback() -> None:
        calls.append(1)

    manager.subscribe(callback)
    manager.unsubscribe(callback)
    manager.unsubscribe(callback)  # twice is harmless
    clock.now = manager.next_rotation
    assert manager.maybe_rotate() is True and calls == []


def test_restart_gives_same_hashes() -> None:
    clock = FakeClock(T0 + 5 * DAY)
    first = CertManager(HOST_KEY, clock=clock)
    second = CertManager(ed25519_pair(b"\x21" * 32).private_key, clock=clock)
    assert first.advertised_certhashes() == second.advertised_certhashes()
    assert first.noise_certhashes() == second.noise_certhashes()
    assert first.current() == second.current()


def test_long_running_equals_fresh_start() -> None:
    clock = FakeClock(T0)
    running = CertManager(HOST_KEY, clock=clock)
    for _ in range(40):
        clock.now += DAY
        running.maybe_rotate()
    fresh = CertManager(HOST_KEY, clock=FakeClock(clock.now))
    assert running.advertised_certhashes() == fresh.advertised_certhashes()
    assert running.current() == fresh.current()


def test_rotation_is_staggered_per_key() -> None:
    keys = [ed25519_pair(bytes([i]) * 32).private_key for i in range(1, 6)]
    due = {CertManager(key, clock=FakeClock(T0)).next_rotation for key in keys}
    assert len(due) > 1


def test_other_host_key_types() -> None:
    for key in (secp256k1_pair().private_key, rsa_pair().private_key):
        manager = CertManager(key, clock=FakeClock(T0))
        _check_invariants(manager, T0)
        assert (
            manager.advertised_certhashes()
            != CertManager(HOST_KEY, FakeClock(T0)).advertised_certhashes()
        )


@settings(max_examples=60, deadline=None)
@given(start=st.floats(min_value=1.0e9, max_value=4.0e9), probe=st.floats(0.0, 1.0))
def test_schedule_is_what_a_manager_advertises_at_each_moment(start: float, probe: float) -> None:
    """``certhash_schedule`` is the listener's arithmetic: at any moment of the span, the pair of
    the covering period is the one a manager whose clock reads that moment advertises."""
    end = start + 45 * DAY
    periods = certhash_schedule(HOST_KEY, start, end)
    assert periods[0].start <= start < periods[0].end and periods[-1].end > end
    assert all(a.end == b.start for a, b in zip(periods, periods[1:], strict=False))
    moment = start + probe * (end - start)
    (period,) = [p for p in periods if p.start <= moment < p.end]
    manager = CertManager(HOST_KEY, clock=FakeClock(moment))
    assert list(period.certhashes) == manager.advertised_certhashes()
    assert manager.next_rotation == period.end


def test_schedule_refuses_a_backward_span() -> None:
    with pytest.raises(ValueError, match="before its start"):
        certhash_schedule(HOST_KEY, T0, T0 - 1)


def test_next_rotation_after_is_the_managers() -> None:
    for offset in (0.0, 3 * DAY, 13 * DAY, 40 * DAY):
        manager = CertManager(HOST_KEY, clock=FakeClock(T0 + offset))
        assert next_rotation_after(HOST_KEY, T0 + offset) == manager.next_rotation
