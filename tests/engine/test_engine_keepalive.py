"""Keepalive in the engine (``EngineConfig.keepalive_interval``), sans-IO on a virtual clock:
one side's PINGs keep an idle pair alive far past the idle timeout; without them it ends."""

from __future__ import annotations

from support.enginepair import EnginePair, ServerCertificate

from py_libp2p_webtransport.engine import ConnectionTerminated, EngineConfig
from py_libp2p_webtransport.engine._adapter import keepalive_slot

IDLE = 2.0


def idle_pair(
    engine_pair: tuple[str, str],
    cert: ServerCertificate,
    keepalive: float | None,
    server_keepalive: float | None = None,
) -> EnginePair:
    pair = EnginePair(
        *engine_pair,
        cert,
        # By default only the client pings: the server's idle timer must be kept alive by the
        # PINGs, the client's by their ACKs.
        client_config=EngineConfig(is_client=True, idle_timeout=IDLE, keepalive_interval=keepalive),
        server_config=EngineConfig(
            is_client=False, idle_timeout=IDLE, keepalive_interval=server_keepalive
        ),
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


def count_datagrams(pair: EnginePair) -> dict[str, int]:
    """Datagrams each side sends from now on (counted as the pair moves them)."""
    counts = {"client": 0, "server": 0}
    record = pair._record

    def counting(sender: str, datagrams: list[bytes]) -> None:
        counts[sender] += len(datagrams)
        record(sender, datagrams)

    pair._record = counting  # type: ignore[method-assign]
    return counts


def test_when_both_ends_keep_alive_only_the_client_pings(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    """One PING and its ACK per interval, not a PING from each end (both ends' deadlines used
    to fall due in the same slot): the server's waits two slots longer, so the client's PING
    arrives first and re-arms it."""
    interval = IDLE / 2
    pair = idle_pair(engine_pair, cert, interval, server_keepalive=interval)
    pair.settle(horizon=keepalive_slot(interval))
    sent = count_datagrams(pair)
    intervals = 20
    run_idle(pair, intervals * interval)
    assert not pair.client.of_type(ConnectionTerminated)
    assert not pair.srv.of_type(ConnectionTerminated)
    # About one each per interval (a PING one way, its ACK the other); both pinging was two.
    assert intervals * 0.8 <= sent["client"] <= intervals + 1
    assert sent["server"] <= intervals + 1


def test_a_server_keeps_a_client_that_never_pings_alive(
    engine_pair: tuple[str, str], cert: ServerCertificate
) -> None:
    """A browser sends no keepalive of its own: the server's PINGs (two slots later than a
    client's would be) keep both ends' idle timers from expiring."""
    interval = IDLE / 2
    pair = idle_pair(engine_pair, cert, None, server_keepalive=interval)
    pair.settle(horizon=keepalive_slot(interval))
    quiet_since = pair.now
    due = pair.srv.engine.get_timer()
    slot = keepalive_slot(interval)
    assert due is not None
    assert quiet_since + interval + 2 * slot - 1e-6 <= due <= quiet_since + interval + 3 * slot
    sent = count_datagrams(pair)
    run_idle(pair, 20 * IDLE)
    assert not pair.client.of_type(ConnectionTerminated)
    assert not pair.srv.of_type(ConnectionTerminated)
    assert 20 <= sent["server"] <= 60
