"""Helpers of the endpoint tests: certificate, configs, echo/collect handlers, bounded waits."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.endpoint import EndpointConnection
from py_libp2p_webtransport.engine.base import (
    ConnectionTerminated,
    EngineConfig,
    EngineEvent,
    HandshakeCompleted,
    StreamDataReceived,
)


@dataclass(frozen=True)
class Certificate:
    certificate_der: bytes
    private_key_der: bytes


def make_certificate() -> Certificate:
    """A throwaway certificate in the libp2p shape and its key."""
    cert = ephemeral_certificate()
    return Certificate(cert.der, cert.key_der)


def server_config(certificate: Certificate, idle_timeout: float = 30.0) -> EngineConfig:
    return EngineConfig(
        is_client=False,
        certificate_der=certificate.certificate_der,
        private_key_der=certificate.private_key_der,
        idle_timeout=idle_timeout,
    )


CLIENT_CONFIG = EngineConfig(is_client=True)


@dataclass
class EchoHandler:
    """Server side: echoes every stream's bytes back, FIN included; records every event."""

    events: list[EngineEvent] = field(default_factory=list)
    terminated: trio.Event = field(default_factory=trio.Event)

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[EngineEvent], now: float
    ) -> None:
        self.events.extend(events)
        for ev in events:
            if isinstance(ev, StreamDataReceived):
                conn.engine.send_stream_data(ev.stream_id, ev.data, ev.end_stream)
                conn.engine.consume(ev.stream_id, len(ev.data))
            elif isinstance(ev, ConnectionTerminated):
                self.terminated.set()

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("no timer was asked for")


@dataclass
class CollectHandler:
    """Client side: gathers each stream's bytes; events fire on handshake, FIN and close."""

    data: dict[int, bytearray] = field(default_factory=dict)
    finished: dict[int, trio.Event] = field(default_factory=dict)
    handshake: trio.Event = field(default_factory=trio.Event)
    terminated: trio.Event = field(default_factory=trio.Event)
    events: list[EngineEvent] = field(default_factory=list)

    def finished_event(self, stream_id: int) -> trio.Event:
        return self.finished.setdefault(stream_id, trio.Event())

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[EngineEvent], now: float
    ) -> None:
        self.events.extend(events)
        for ev in events:
            if isinstance(ev, HandshakeCompleted):
                self.handshake.set()
            elif isinstance(ev, StreamDataReceived):
                self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                conn.engine.consume(ev.stream_id, len(ev.data))
                if ev.end_stream:
                    self.finished_event(ev.stream_id).set()
            elif isinstance(ev, ConnectionTerminated):
                self.terminated.set()

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("no timer was asked for")


async def wait_until(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait (bounded) for a condition the pump makes true; sleeps between checks."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.005)
        return
    raise AssertionError(f"timed out waiting for {what}")
