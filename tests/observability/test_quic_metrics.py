"""Prometheus metrics of ``/quic-v1`` connections (``QuicTransport``): a real scrape over HTTP
after a py-libp2p echo over loopback UDP, failed dials and accepts, and a socket shared with
WebTransport counted once."""

from __future__ import annotations

import gc
import os
import weakref
from typing import Any

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from prometheus_client import REGISTRY
from support.quic_helpers import QUIC_V4, WT_V4, quic_addrs, quic_host, quic_of
from support.scrape import delta, metrics_server, scrape, value
from support.wt_helpers import read_to_end

from py_libp2p_webtransport import metrics as metrics_module
from py_libp2p_webtransport import shared_endpoint
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.endpoint import Endpoint, EndpointOptions
from py_libp2p_webtransport.engine.base import EngineConfig
from py_libp2p_webtransport.errors import PeerIdMismatch
from py_libp2p_webtransport.metrics import Metrics
from py_libp2p_webtransport.quic_conn import QuicConnection

P = "py_libp2p_webtransport"
SIZE = 256 * 1024
QUIC = {"transport": "quic"}


async def wait_for(count: Any, target: float, conn: QuicConnection) -> None:
    """Until ``count()`` reaches ``target``: re-checked after each of ``conn``'s pump turns."""
    while count() < target:
        await conn.wait_turn()


async def test_scrape_after_a_quic_echo(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the sample below: the transports' own samplers wait an hour.
    monkeypatch.setattr(metrics_module, "SAMPLE_INTERVAL", 3600.0)
    payload = os.urandom(SIZE)
    resets = f"{P}_streams_reset_total"

    def resets_now(side: str) -> float:
        return REGISTRY.get_sample_value(resets, {**QUIC, "side": side}) or 0.0

    with metrics_server() as url, trio.fail_after(60):
        before = await scrape(url)
        async with (
            quic_host(engine, metrics=True) as server,
            quic_host(engine, metrics=True) as client,
        ):
            await client.connect(PeerInfo(server.get_id(), quic_addrs(server)))
            stream = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            await stream.write(payload)
            await stream.close_write()
            assert await read_to_end(stream) == payload
            await stream.close()
            (server_side,) = server.get_network().get_connections(client.get_id())
            peer_conn = server_side.muxed_conn
            assert isinstance(peer_conn, QuicConnection)
            # A stream reset by the client: counted on its side, and on the server's once the
            # RESET_STREAM arrived.
            local_resets, remote_resets = resets_now("local"), resets_now("remote")
            doomed = await client.new_stream(server.get_id(), [ECHO_PROTOCOL])
            await doomed.write(b"x")
            await doomed.reset()
            assert resets_now("local") == local_resets + 1
            await wait_for(lambda: resets_now("remote"), remote_resets + 1, peer_conn)
            # What each transport's sampler does every few seconds.
            Metrics.get().sample([*quic_of(server).connections(), *quic_of(client).connections()])
            during = await scrape(url)
            await client.disconnect(server.get_id())
            await peer_conn.closed_event.wait()
            after = await scrape(url)

    # One connection each way, opened then closed (by the client: the server heard it).
    for direction in ("outbound", "inbound"):
        opened = f"{P}_connections_opened_total"
        assert delta(before, after, opened, **QUIC, direction=direction) == 1
        # Nothing of it under WebTransport's label.
        assert delta(before, after, opened, transport="webtransport", direction=direction) == 0
        assert delta(before, during, f"{P}_connections_open", **QUIC, direction=direction) == 1
        assert delta(before, after, f"{P}_connections_open", **QUIC, direction=direction) == 0
        # One phase: TLS authenticates the peer (no CONNECT, no Noise).
        name = f"{P}_handshake_duration_seconds_count"
        assert delta(before, after, name, **QUIC, direction=direction, phase="quic") == 1
        for phase in ("connect", "noise"):
            assert delta(before, after, name, **QUIC, direction=direction, phase=phase) == 0
        # The handshake's echo and reset streams, at least, went each way.
        streams = f"{P}_streams_opened_total"
        assert delta(before, after, streams, **QUIC, direction=direction) >= 2
    closed = f"{P}_connections_closed_total"
    assert delta(before, after, closed, **QUIC, direction="outbound", reason="local") == 1
    assert delta(before, after, closed, **QUIC, direction="inbound", reason="remote") == 1
    assert value(after, f"{P}_streams_open", **QUIC) == value(before, f"{P}_streams_open", **QUIC)
    assert delta(before, after, resets, **QUIC, side="local") >= 1
    assert delta(before, after, resets, **QUIC, side="remote") >= 1
    # The sample saw both live connections: one RTT and one window each, under quic.
    assert delta(before, during, f"{P}_rtt_seconds_count", **QUIC) == 2
    assert delta(before, during, f"{P}_congestion_window_bytes_count", **QUIC) == 2
    assert delta(before, during, f"{P}_rtt_seconds_sum", **QUIC) > 0
    assert delta(before, during, f"{P}_rtt_seconds_count", transport="webtransport") == 0
    # Losses and paused reception are exported per transport (none expected on loopback, so
    # only their presence is checked: their values belong to loss recovery).
    assert (f"{P}_packets_lost_total", (("transport", "quic"),)) in after
    assert (f"{P}_receive_paused_connections", (("transport", "quic"),)) in after
    # The QUIC listener's and the client's sockets are exported: the payload went both ways.
    assert delta(before, after, f"{P}_udp_sent_bytes_total") >= 2 * SIZE
    assert delta(before, after, f"{P}_udp_received_bytes_total") >= 2 * SIZE
    failures = [key for key in after if key[0] == f"{P}_handshake_failures_total"]
    assert all(delta(before, after, name, **dict(labels)) == 0 for name, labels in failures)


async def test_a_failed_quic_dial_is_counted_by_reason(engine: str) -> None:
    """A dial naming another peer id fails typed, and is counted under quic and its reason."""
    failures = f"{P}_handshake_failures_total"
    with metrics_server() as url, trio.fail_after(30):
        before = await scrape(url)
        async with quic_host(engine) as server, quic_host(engine, (), metrics=True) as client:
            (addr,) = quic_addrs(server)
            other = ID.from_pubkey(create_new_key_pair().public_key)
            # The transport itself: the swarm would retry the dial (one failure each).
            with pytest.raises(PeerIdMismatch):
                await quic_of(client).dial(Multiaddr(f"{addr}/p2p/{other}"))
        after = await scrape(url)
    outbound = {**QUIC, "direction": "outbound"}
    assert delta(before, after, failures, **outbound, reason="PeerIdMismatch") == 1
    assert delta(before, after, f"{P}_connections_opened_total", **outbound) == 0
    wt = {"transport": "webtransport", "direction": "outbound"}
    assert delta(before, after, failures, **wt, reason="PeerIdMismatch") == 0


async def test_a_refused_quic_client_is_counted_inbound(engine: str) -> None:
    """A client certificate that proves no libp2p peer: the listener refuses it (bad_certificate)
    and counts the failure under quic, inbound, by its error type."""
    from support.enginepair import make_certificate as plain_certificate

    failures = f"{P}_handshake_failures_total"
    with metrics_server() as url, trio.fail_after(30):
        before = await scrape(url)
        async with quic_host(engine, metrics=True) as server:
            (addr,) = quic_addrs(server)
            target = ("127.0.0.1", int(addr.value_for_protocol("udp")))
            cert = plain_certificate()
            config = EngineConfig(
                is_client=True,
                alpn_protocols=("libp2p",),
                certificate_der=cert.certificate_der,
                private_key_der=cert.private_key_der,
            )
            endpoint = await Endpoint.bind("127.0.0.1", 0, EndpointOptions(engine=engine))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(endpoint.run)
                conn = endpoint.connect(target, config, engine=engine)
                await conn.closed_event.wait()
                endpoint.close()
        after = await scrape(url)
    inbound = {**QUIC, "direction": "inbound"}
    refused = [
        (dict(labels)["reason"], delta(before, after, name, **dict(labels)))
        for name, labels in after
        if name == failures and dict(labels).items() >= inbound.items()
    ]
    assert [(reason, n) for reason, n in refused if n] == [("InvalidPeerCertificate", 1)]
    assert delta(before, after, f"{P}_connections_opened_total", **inbound) == 0


async def test_a_shared_socket_is_counted_once(engine: str) -> None:
    """WebTransport and QUIC listening on one UDP socket, both with metrics: the socket's
    counters are exported once while it lives (each transport watches it), and still once
    after it is gone (its totals retired once)."""
    name = f"{P}_udp_sent_bytes_total"

    def exported() -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    with trio.fail_after(30):
        async with quic_host(engine, (WT_V4, QUIC_V4), webtransport=True, metrics=True) as server:
            (shared,) = [
                s for s in shared_endpoint.shared_endpoints() if s.key[0] == str(server.get_id())
            ]
            endpoint = weakref.ref(shared.endpoint)
            del shared
            before, sent_before = exported(), _sent(endpoint)
            async with quic_host(engine) as client:  # metrics off: its socket is not exported
                await client.connect(PeerInfo(server.get_id(), quic_addrs(server)))
                await client.disconnect(server.get_id())
            # Read in the trio thread, between two pump turns: the same instant for both.
            sent, exported_live = _sent(endpoint) - sent_before, exported() - before
            assert sent > 0
            assert exported_live == sent
        del server
        # Closed: the socket sends nothing more; then gone: its totals are retired once.
        sent = _sent(endpoint) - sent_before
        assert exported() - before == sent
    gc.collect()
    assert endpoint() is None, "the closed host's socket is still referenced"
    assert exported() - before == sent


def _sent(endpoint: weakref.ref[Endpoint]) -> int:
    live = endpoint()
    assert live is not None
    return live.stats.bytes_sent


async def test_the_sampler_runs_for_quic_dials_from_a_shared_socket(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host whose QUIC transport only dials, from the socket its WebTransport listener bound,
    still samples its QUIC connections (the server's metrics are off: the samples are the
    dialer's)."""
    monkeypatch.setattr(metrics_module, "SAMPLE_INTERVAL", 0.05)
    quic = {"transport": "quic"}

    def rtt_samples() -> float:
        return REGISTRY.get_sample_value(f"{P}_rtt_seconds_count", quic) or 0.0

    with trio.fail_after(30):
        async with (
            quic_host(engine) as server,
            quic_host(engine, (WT_V4,), webtransport=True, metrics=True) as client,
        ):
            assert quic_of(client).endpoints() == []  # no QUIC listener, no client socket
            start = rtt_samples()
            await client.connect(PeerInfo(server.get_id(), quic_addrs(server)))
            (conn,) = quic_of(client).connections()
            while rtt_samples() < start + 2:  # one connection, two samples
                await trio.sleep(0.05)
            assert not conn.is_closed
            assert quic_of(client).endpoints() == []  # it dialed from the shared socket
