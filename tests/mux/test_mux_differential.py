"""Differential tests (uvloop style): one scenario drives several implementations, outputs compared.

* Each twin's RecvBuffer against a naive bytearray oracle (hypothesis state machine).
* The compiled twin against the pure twin on seeded random op lists, including bad arguments:
  equal results, equal exception types, equal state after every operation.
"""

from __future__ import annotations

import collections
import functools
import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from py_libp2p_webtransport._compat import NO_EXTENSIONS
from py_libp2p_webtransport.constants import VARINT_MAX
from py_libp2p_webtransport.errors import BufferLimitExceeded, FlowControlError, NeedMoreData

MACHINE_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class BufferOracle:
    """The obvious, slow RecvBuffer: one bytearray, everything recomputed."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit
        self.eof = False
        self.received = 0
        self.consumed = 0
        self.unreported = 0

    def append(self, chunk: bytes) -> None:
        if self.eof:
            raise FlowControlError("after eof")
        if self.limit and len(self.data) + len(chunk) > self.limit:
            raise BufferLimitExceeded("limit")
        self.data += chunk
        self.received += len(chunk)

    def _take(self, n: int) -> bytes:
        out = bytes(self.data[:n])
        del self.data[:n]
        self.consumed += n
        self.unreported += n
        return out

    def read(self, n: int) -> bytes:
        return self._take(len(self.data) if n < 0 else min(n, len(self.data)))

    def peek(self, n: int) -> bytes:
        return bytes(self.data if n < 0 else self.data[:n])

    def read_exactly(self, n: int) -> bytes:
        if n > len(self.data):
            raise NeedMoreData("short")
        return self._take(n)

    def read_until_eof(self) -> bytes:
        if not self.eof:
            raise NeedMoreData("no eof")
        return self._take(len(self.data))

    def clear(self) -> int:
        return len(self._take(len(self.data)))

    def take_consumed(self) -> int:
        n, self.unreported = self.unreported, 0
        return n


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """A call's result, or the type of the exception it raised, so outcomes compare equal."""
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - the exception type *is* the outcome
        return ("raised", type(exc))


def make_buffer_machine(mod: ModuleType) -> type[RuleBasedStateMachine]:
    class RecvBufferVsOracle(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.buf: Any = None
            self.oracle: BufferOracle | None = None

        @rule(limit=st.sampled_from([0, 1, 64, 300]))
        def create(self, limit: int) -> None:
            if self.buf is None:
                self.buf = mod.RecvBuffer(limit)
                self.oracle = BufferOracle(limit)

        def both(self, name: str, *args: Any) -> None:
            if self.buf is None:
                return
            got = outcome(lambda: getattr(self.buf, name)(*args))
            want = outcome(lambda: getattr(self.oracle, name)(*args))
            assert got == want, (name, args)

        @rule(data=st.binary(max_size=80))
        def append(self, data: bytes) -> None:
            self.both("append", data)

        @rule(n=st.integers(min_value=-2, max_value=200))
        def read(self, n: int) -> None:
            self.both("read", n)

        @rule(n=st.integers(min_value=-2, max_value=200))
        def peek(self, n: int) -> None:
            self.both("peek", n)

        @rule(n=st.integers(min_value=0, max_value=200))
        def read_exactly(self, n: int) -> None:
            self.both("read_exactly", n)

        @rule()
        def read_until_eof(self) -> None:
            self.both("read_until_eof")

        @rule()
        def clear(self) -> None:
            self.both("clear")

        @rule()
        def take_consumed(self) -> None:
            self.both("take_consumed")

        @rule()
        def feed_eof(self) -> None:
            if self.buf is not None:
                self.buf.feed_eof()
                assert self.oracle is not None
                self.oracle.eof = True

        @invariant()
        def same_state(self) -> None:
            if self.buf is None:
                return
            o = self.oracle
            assert o is not None
            assert self.buf.size == len(o.data)
            assert self.buf.eof == o.eof
            assert self.buf.at_eof == (o.eof and not o.data)
            assert self.buf.total_received == o.received
            assert self.buf.total_consumed == o.consumed

    return RecvBufferVsOracle


def test_recv_buffer_matches_oracle(mux_module: ModuleType) -> None:
    run_state_machine_as_test(make_buffer_machine(mux_module), settings=MACHINE_SETTINGS)


# --- compiled twin vs pure twin ---------------------------------------------------------------

ODD_COUNTS = [-1, -(2**70), 2**70, VARINT_MAX, VARINT_MAX + 1, 1.5, True]


def random_count(rng: random.Random, typical: int) -> object:
    if rng.random() < 0.05:
        return rng.choice(ODD_COUNTS)
    return rng.randint(0, typical)


def buffer_ops(rng: random.Random, count: int) -> list[tuple[str, tuple[object, ...]]]:
    ops: list[tuple[str, tuple[object, ...]]] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.45:
            size = rng.choice([0, 1, 2, 7, 100, 1500, 5000])
            data: object = rng.randbytes(size)
            if rng.random() < 0.05:
                data = rng.choice([bytearray(data), memoryview(data), "str", 3])
            ops.append(("append", (data,)))
        elif kind < 0.65:
            ops.append(("read", (random_count(rng, 3000) if rng.random() < 0.9 else -1,)))
        elif kind < 0.75:
            ops.append(("read_exactly", (random_count(rng, 1500),)))
        elif kind < 0.82:
            ops.append(("peek", (random_count(rng, 3000),)))
        elif kind < 0.88:
            ops.append(("take_consumed", ()))
        elif kind < 0.93:
            ops.append(("read_until_eof", ()))
        elif kind < 0.96:
            ops.append(("clear", ()))
        elif kind < 0.98:
            ops.append(("size", ()))
        elif kind < 0.99:
            ops.append(("feed_eof", ()))
        else:
            ops.append((RENEW, ()))  # a fresh pair, so EOF does not end the scenario
    return ops


# Pseudo-op: a fresh pair, so EOF does not end the scenario.
RENEW = "renew"


def apply(obj: Any, name: str, args: tuple[object, ...]) -> Any:
    attr = getattr(obj, name)
    return attr(*args) if callable(attr) else attr


def run_both(
    factories: list[Callable[[], Any]],
    ops: list[tuple[str, tuple[object, ...]]],
    props: list[str],
) -> collections.Counter[tuple[str, str]]:
    """Apply ``ops`` to one object per factory; return a tally of (op, outcome kind)."""
    objects = [make() for make in factories]
    tally: collections.Counter[tuple[str, str]] = collections.Counter()
    for step, (name, args) in enumerate(ops):
        if name == RENEW:
            objects = [make() for make in factories]
            continue
        results = []
        for obj in objects:
            kind, value = outcome(functools.partial(apply, obj, name, args))
            results.append((kind, value, tuple(getattr(obj, p) for p in props), repr(obj)))
        assert results[0] == results[1], (step, name, args)
        kind, value = results[0][:2]
        if kind == "raised":
            tally[(name, value.__name__)] += 1
        else:
            tally[(name, "ok")] += 1
            tally[(name, "returned a value")] += value is not None
    return tally


@pytest.fixture(scope="module")
def both_twins() -> list[ModuleType]:
    from py_libp2p_webtransport import _mux_c, _mux_py

    return [_mux_c, _mux_py]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("limit", [0, 4096])
@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="pure-Python run: no compiled twin")
def test_twins_agree_on_recv_buffer(both_twins: list[ModuleType], seed: int, limit: int) -> None:
    rng = random.Random(seed)
    factories = [lambda mod=mod: mod.RecvBuffer(limit) for mod in both_twins]
    props = ["size", "eof", "at_eof", "total_received", "total_consumed", "limit"]
    tally = run_both(factories, buffer_ops(rng, 1500), props)
    # The scenario must reach the interesting outcomes, or it proves little.
    assert tally[("read", "ok")] > 100 and tally[("read_exactly", "ok")] > 5
    assert tally[("read_exactly", "NeedMoreData")] > 0 and tally[("append", "FlowControlError")] > 0
    assert limit == 0 or tally[("append", "BufferLimitExceeded")] > 0


@pytest.mark.c_extension
@pytest.mark.skipif(NO_EXTENSIONS, reason="pure-Python run: no compiled twin")
@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.RecvBuffer(-1),
        lambda m: m.RecvBuffer(2**70),
        lambda m: m.RecvBuffer(1.0),
    ],
)
def test_twins_agree_on_constructor_errors(
    both_twins: list[ModuleType], make: Callable[[ModuleType], object]
) -> None:
    got = [outcome(lambda mod=mod: type(make(mod)).__name__) for mod in both_twins]
    assert got[0] == got[1]
    assert got[0][0] == "raised"
