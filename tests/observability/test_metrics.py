"""Prometheus metrics: a real scrape over HTTP after a py-libp2p transfer over loopback UDP."""

from __future__ import annotations

import os

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from prometheus_client import REGISTRY
from support.scrape import delta, metrics_server, scrape, value
from support.wt_helpers import read_to_end, transport_of, wt_addrs, wt_host

from py_libp2p_webtransport import metrics as metrics_module
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.certs import CertManager
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.errors import CerthashMismatch
from py_libp2p_webtransport.metrics import Metrics
from py_libp2p_webtransport.multiaddr import with_certhashes

P = "py_libp2p_webtransport"
SIZE = 256 * 1024


async def test_scrape_after_a_transfer(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the sample below: the transports' own samplers wait an hour.
    monkeypatch.setattr(metrics_module, "SAMPLE_INTERVAL", 3600.0)
    payload = os.urandom(SIZE)
    with metrics_server() as url, trio.fail_after(60):
        before = await scrape(url)
        async with wt_host(engine, metrics=True) as server, wt_host(engine, metrics=True) as client:
            await client.connect(PeerInfo(server.get_id(), wt_addrs(server)))
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            await stream.write(payload)
            await stream.close_write()
            assert await read_to_end(stream) == payload
            await stream.close()
            (server_side,) = server.get_network().get_connections(client.get_id())
            peer_conn = server_side.muxed_conn
            assert isinstance(peer_conn, WebTransportConnection)
            # What each transport's sampler does every few seconds.
            Metrics.get().sample(
                [*transport_of(server).connections(), *transport_of(client).connections()]
            )
            during = await scrape(url)
            await client.disconnect(server.get_id())
            await peer_conn.closed_event.wait()
            after = await scrape(url)

    # One connection each way, opened then closed (by the client: the server heard it).
    wt = {"transport": "webtransport"}
    for direction in ("outbound", "inbound"):
        opened = f"{P}_connections_opened_total"
        assert delta(before, after, opened, **wt, direction=direction) == 1
        assert delta(before, after, opened, transport="quic", direction=direction) == 0
        assert delta(before, during, f"{P}_connections_open", **wt, direction=direction) == 1
        assert delta(before, after, f"{P}_connections_open", **wt, direction=direction) == 0
        for phase in ("quic", "connect", "noise"):
            name = f"{P}_handshake_duration_seconds_count"
            assert delta(before, after, name, **wt, direction=direction, phase=phase) == 1
    closed = f"{P}_connections_closed_total"
    assert delta(before, after, closed, **wt, direction="outbound", reason="local") == 1
    assert delta(before, after, closed, **wt, direction="inbound", reason="remote") == 1
    # The sample saw both live connections: one RTT and one window each.
    assert delta(before, during, f"{P}_rtt_seconds_count", **wt) == 2
    assert delta(before, during, f"{P}_congestion_window_bytes_count", **wt) == 2
    assert delta(before, during, f"{P}_rtt_seconds_sum", **wt) > 0
    # Both hosts' endpoints: the payload went out and came back, plus headers and handshakes.
    assert delta(before, after, f"{P}_udp_sent_bytes_total") >= 2 * SIZE
    assert delta(before, after, f"{P}_udp_received_bytes_total") >= 2 * SIZE
    assert delta(before, after, f"{P}_udp_datagrams_sent_total") >= 2 * SIZE / 1500
    # Streams: Noise, identify, echo... at least the echo stream each way; none left open.
    assert delta(before, after, f"{P}_streams_opened_total", **wt, direction="outbound") >= 1
    assert delta(before, after, f"{P}_streams_opened_total", **wt, direction="inbound") >= 1
    assert value(after, f"{P}_streams_open", **wt) == value(before, f"{P}_streams_open", **wt)
    # Nothing dropped, and no failure counted, on a clean loopback exchange.
    for reason in ("malformed", "unknown_cid", "invalid_token", "half_open"):
        assert delta(before, after, f"{P}_packets_dropped_total", reason=reason) == 0
    failures = [key for key in after if key[0] == f"{P}_handshake_failures_total"]
    assert all(delta(before, after, name, **dict(labels)) == 0 for name, labels in failures)
    # The listener's certificates: a rotation is due within the 12-day validity window.
    assert 0 < value(after, f"{P}_certificate_next_rotation_seconds") <= 12 * 24 * 3600


async def test_a_failed_dial_is_counted_by_reason(engine: str) -> None:
    """A dial to a certhash the server does not have fails typed, and is counted so."""
    with metrics_server() as url, trio.fail_after(60):
        before = await scrape(url)
        async with wt_host(engine) as server, wt_host(engine, metrics=True) as client:
            (addr,) = wt_addrs(server)
            text = str(addr)
            other = CertManager(create_new_key_pair().private_key).advertised_certhashes()
            wrong = with_certhashes(Multiaddr(text[: text.index("/certhash/")]), other)
            # The transport itself: the swarm would retry the dial (one failure each).
            with pytest.raises(CerthashMismatch):
                await transport_of(client).dial(wrong)
        after = await scrape(url)
    name = f"{P}_handshake_failures_total"
    wt = {"transport": "webtransport", "direction": "outbound"}
    assert delta(before, after, name, **wt, reason="CerthashMismatch") == 1
    assert delta(before, after, f"{P}_connections_opened_total", **wt) == 0


async def test_metrics_off_counts_nothing(engine: str) -> None:
    """Without ``metrics=True`` the transport registers and counts nothing."""
    with metrics_server() as url, trio.fail_after(60):
        before = await scrape(url)
        async with wt_host(engine) as server, wt_host(engine) as client:
            await client.connect(PeerInfo(server.get_id(), wt_addrs(server)))
            await client.disconnect(server.get_id())
        after = await scrape(url)
    for direction in ("outbound", "inbound"):
        name = f"{P}_connections_opened_total"
        assert delta(before, after, name, transport="webtransport", direction=direction) == 0
    assert delta(before, after, f"{P}_udp_sent_bytes_total") == 0


async def test_the_sampler_runs_while_connections_live(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each transport runs a sampler: RTT and window samples appear without a manual
    ``sample()`` (the interval shortened so the test need not wait 15 s)."""
    monkeypatch.setattr(metrics_module, "SAMPLE_INTERVAL", 0.05)

    wt = {"transport": "webtransport"}

    def rtt_samples() -> float:
        return REGISTRY.get_sample_value(f"{P}_rtt_seconds_count", wt) or 0.0

    def window_samples() -> float:
        return REGISTRY.get_sample_value(f"{P}_congestion_window_bytes_count", wt) or 0.0

    with trio.fail_after(60):
        async with wt_host(engine, metrics=True) as server, wt_host(engine, metrics=True) as client:
            await client.connect(PeerInfo(server.get_id(), wt_addrs(server)))
            start, window_start = rtt_samples(), window_samples()
            while rtt_samples() < start + 4:  # two connections (one per side), two samples each
                await trio.sleep(0.05)
            await client.disconnect(server.get_id())
    # The samplers ended with their hosts; every sample took both figures.
    assert window_samples() - window_start == rtt_samples() - start >= 4


def test_sampled_histograms_read_as_prometheus_client_histograms() -> None:
    """RTT and window samples are counted by hand (``metrics._Buckets``, one lock per sample
    instead of one per bucket): a scrape shows exactly what ``prometheus_client.Histogram`` fed
    the same values shows, bucket by bucket, bounds included."""
    from prometheus_client import CollectorRegistry, Histogram

    from py_libp2p_webtransport.engine.base import EngineStats

    class Sampled:  # what ``sample()`` reads of a connection
        TRANSPORT_LABEL = "quic"
        is_closed = False
        stalls_broken = 0
        receive_paused = False

        def __init__(self, rtt: float, cwnd: int) -> None:
            self.stats = EngineStats(rtt, cwnd, 0, 0, 0, 0, 0, 0)

        def quic_stats(self) -> EngineStats:
            return self.stats

    # On bounds, between them, below the first and above the last.
    rtts = [0.0, 0.0001, 0.0003, 0.001, 0.0049, 0.5, 1.0, 1.5, 0.02]
    cwnds = [0, 2904, 3000, 14520, 1452 * 2**13, 1452 * 2**14, 50_000, 100_000, 2904]
    ours_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    metrics = Metrics(ours_registry)
    metrics.sample([Sampled(r, c) for r, c in zip(rtts, cwnds, strict=True)])
    for name, values, buckets in (
        (f"{P}_rtt_seconds", rtts, metrics_module._RTT_BUCKETS),
        (f"{P}_congestion_window_bytes", cwnds, metrics_module._CWND_BUCKETS),
    ):
        reference = Histogram(name, "", ["transport"], buckets=buckets, registry=reference_registry)
        for v in values:
            reference.labels("quic").observe(v)

    def samples(
        registry: CollectorRegistry,
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            if family.name in (f"{P}_rtt_seconds", f"{P}_congestion_window_bytes")
            for s in family.samples
            if s.labels.get("transport") == "quic" and not s.name.endswith("_created")
        }

    ours, reference_samples = samples(ours_registry), samples(reference_registry)
    # Per histogram: each bound and +Inf, then _count and _sum.
    expected = sum(len(b) + 3 for b in (metrics_module._RTT_BUCKETS, metrics_module._CWND_BUCKETS))
    assert len(reference_samples) == expected
    assert ours == reference_samples
