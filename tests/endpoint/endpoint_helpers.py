"""Helpers of the endpoint tests: certificate, configs, echo/collect handlers, bounded waits."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
    """A self-signed ECDSA P-256 certificate with one extension (the libp2p shape)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "endpoint-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert.public_bytes(serialization.Encoding.DER),
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


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
