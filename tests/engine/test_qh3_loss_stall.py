"""qh3 over a lossy, reordering link on a virtual clock (``support/lossypair.py``): the stall and
the "reserved stream is missing" failure that qh3 2.1.0 shows there, and that our adapter prevents.

qh3 only: these reproduce qh3 bugs (see ``engine/qh3/send_gate.py`` and
``Qh3Connection._wt_reservations_built``); aioquic runs the same workloads over real sockets
in ``tests/reliability/test_faults.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.enginepair import ServerCertificate
from support.lossypair import run_echoes

from py_libp2p_webtransport.engine import EngineConfig, available_engines

pytestmark = pytest.mark.skipif("qh3" not in available_engines(), reason="qh3 unavailable")


def ungated(config: EngineConfig, **kwargs: Any) -> Any:
    from py_libp2p_webtransport.engine.qh3 import Qh3Engine

    return Qh3Engine(config, send_gate=False, **kwargs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_200_echoes_over_a_reordering_link_finish(cert: ServerCertificate, seed: int) -> None:
    outcome = run_echoes(cert, streams=200, size=2000, loss=0.0, seed=seed, horizon=10.0)
    assert outcome.finished, outcome.timeline
    assert outcome.echoed == outcome.expected


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_200_echoes_over_a_lossy_link_finish(cert: ServerCertificate, seed: int) -> None:
    outcome = run_echoes(
        cert, streams=200, size=2000, loss=0.03, seed=seed, jitter=0.0003, horizon=10.0
    )
    assert outcome.finished, outcome.timeline
    assert outcome.dropped > 0


@pytest.mark.parametrize(("streams", "size", "loss"), [(1, 4 << 20, 0.02), (8, 512 << 10, 0.03)])
def test_long_streams_over_a_lossy_link_finish(
    cert: ServerCertificate, streams: int, size: int, loss: float
) -> None:
    outcome = run_echoes(
        cert, streams=streams, size=size, loss=loss, seed=11, jitter=0.0002, horizon=30.0
    )
    assert outcome.finished, outcome.timeline
    assert outcome.dropped > 0


def test_no_reserved_stream_is_lost_under_reordering(cert: ServerCertificate) -> None:
    # Before the reservation guard about 1 run in 25 of this workload died with qh3's
    # ValueError("reserved stream is missing") from poll_transmit (PTO probe copies of data
    # acknowledged while the copy waited unbuilt); it propagates out of run_echoes.
    for seed in range(20, 45):
        outcome = run_echoes(
            cert, streams=200, size=2000, loss=0.03, seed=seed, jitter=0.0003, horizon=10.0
        )
        assert outcome.finished, (seed, outcome.timeline)


def test_qh3_itself_still_stalls_without_the_gate(cert: ServerCertificate) -> None:
    """The upstream bug, kept visible: with every write handed to the core at once, 200
    concurrent echoes over a link that only reorders (no loss) stall for the whole horizon,
    with bytes in flight above the congestion window on both ends and PTO timers seconds away.

    If this starts failing, a qh3 upgrade fixed ``poll_transmit``'s withheld ACKs and the send
    gate (``engine/qh3/send_gate.py``) may be retired.
    """
    stalled = 0
    for seed in (1, 2, 3):
        outcome = run_echoes(
            cert, factory=ungated, streams=200, size=2000, loss=0.0, seed=seed, horizon=10.0
        )
        stalled += not outcome.finished
        print(f"seed {seed}: finished={outcome.finished} echoed={outcome.echoed}")
        print("\n".join(outcome.timeline[-3:]))
    assert stalled >= 2


def test_a_long_echo_survives_bursts_of_drops(cert: ServerCertificate) -> None:
    # 20-50 consecutive datagrams lost towards one side within 5 ms, like a full socket buffer.
    outcome = run_echoes(
        cert, streams=1, size=8 << 20, loss=0.0, burst=0.002, seed=3, jitter=0.0001, horizon=30.0
    )
    assert outcome.finished, outcome.timeline
    assert outcome.dropped >= 100
