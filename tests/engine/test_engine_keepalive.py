"""Keepalive in the engine (``EngineConfig.keepalive_interval``), sans-IO on a virtual clock:
one side's PINGs keep an idle pair alive far past the idle timeout; without them it ends."""

from __future__ import annotations

from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import ConnectionTerminated, EngineConfig
from py_libp2p_webtransport.engine._adapter import keepalive_slot

IDLE = 2.0


def idle_pair(
    engine_pair: tuple[str, str], cert: ServerCertificate, keepalive: float | None
) -> EnginePair:
    pair = EnginePair(
        *engine_pair,
        cert,
        # Only the client pings: the server's idle timer must be kept alive by the PINGs, the
        # client's by their ACKs.
        client_config=EngineConfig(is_client=True, idle_timeout=IDLE, keepalive_interval=keepalive),
        server_config=EngineConfig(is_client=False, idle_timeout=IDLE, keepalive_interval=None),
    )
    pair.handshake()
    return pair


def run_idle(pair: EnginePair, seconds: float) -> None:
    """Nobody writes for ``seconds`` of virtual time: only timers and what they send."""
    end = pair.now + seconds
    pair.run(
        lambda: pair.now >= end or bool(pair.client.of_type(ConnectionTerminated)),
        max_steps=20_000,
    )


def test_keepalive_keeps_an_idle_pair_past_the_idle_timeout(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    # Asked for more than half the idle timeout: the engine pings at half of it anyway.
    pair = idle_pair(engine_pair, cert, keepalive=15.0)
    sent_before = pair.client.engine.stats().packets_sent
    run_idle(pair, 20 * IDLE)
    assert not pair.client.of_type(ConnectionTerminated)
    assert not pair.srv.of_type(ConnectionTerminated)
    pings = pair.client.engine.stats().packets_sent - sent_before
    assert 20 <= pings <= 60  # about one per IDLE / 2, not a flood


def test_without_keepalive_the_idle_pair_ends(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    pair = idle_pair(engine_pair, cert, keepalive=None)
    run_idle(pair, 20 * IDLE)
    assert pair.client.of_type(ConnectionTerminated)


def test_keepalives_fall_due_on_shared_slots(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    """A PING is due one interval after the last datagram received, rounded up to the slot (a
    tenth of the interval here): connections that went idle a few ms apart ping together."""
    interval = IDLE / 2
    slot = keepalive_slot(interval)
    assert slot == interval / 10
    dues = []
    for start in (1000.0, 1000.013, 1000.031):
        pair = EnginePair(
            *engine_pair,
            cert,
            client_config=EngineConfig(
                is_client=True, idle_timeout=IDLE, keepalive_interval=interval
            ),
            server_config=EngineConfig(is_client=False, idle_timeout=IDLE, keepalive_interval=None),
        )
        pair.now = start
        pair.handshake()
        pair.settle(horizon=slot)  # handshake ACKs are done; only the keepalive is left
        quiet_since = pair.now
        due = pair.client.engine.get_timer()
        assert due is not None
        assert quiet_since - 0.05 + interval <= due <= quiet_since + interval + slot
        assert abs(due / slot - round(due / slot)) < 1e-6  # on a slot boundary
        dues.append(due)
    assert dues[0] == dues[1] == dues[2]
