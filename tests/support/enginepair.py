"""Two engines wired back to back in memory, with a fake clock the test advances.

No sockets: datagrams go straight from one engine's ``datagrams_to_send`` to the other's
``receive_datagrams``. The server engine is created from the client's first Initial, as the
endpoint does. Every loop is bounded, so a bug shows as a failed assertion, never a hang.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from py_libp2p_webtransport.engine import (
    EngineConfig,
    EngineEvent,
    QuicEngine,
    StreamDataReceived,
    create_engine,
)

CLIENT_ADDR = ("127.0.0.1", 40001)
SERVER_ADDR = ("127.0.0.1", 40002)


@dataclass(frozen=True)
class ServerCertificate:
    certificate_der: bytes
    private_key_der: bytes


def make_certificate(days: int = 10) -> ServerCertificate:
    """A self-signed ECDSA P-256 certificate with one extension, like the libp2p ones."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "engine-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ServerCertificate(
        cert.public_bytes(serialization.Encoding.DER),
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def initial_dcid(datagram: bytes) -> bytes:
    """The destination connection id of a long-header packet (RFC 9000 §17.2)."""
    assert datagram[0] & 0x80, "expected a long header packet"
    length = datagram[5]
    return datagram[6 : 6 + length]


@dataclass
class Side:
    engine: QuicEngine
    events: list[EngineEvent] = field(default_factory=list)

    def of_type(self, kind: type) -> list[EngineEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    def stream_bytes(self, stream_id: int) -> bytes:
        return b"".join(
            e.data
            for e in self.events
            if isinstance(e, StreamDataReceived) and e.stream_id == stream_id
        )


ServerFactory = Callable[[EngineConfig, bytes], QuicEngine]


class EnginePair:
    """A client and a server engine exchanging datagrams through memory."""

    def __init__(
        self,
        client_engine: str,
        server_engine: str,
        cert: ServerCertificate,
        *,
        client_config: EngineConfig | None = None,
        server_config: EngineConfig | None = None,
        server_factory: ServerFactory | None = None,
        client_factory: Callable[[EngineConfig], QuicEngine] | None = None,
        auto_consume: bool = True,
    ) -> None:
        self.now = 1000.0
        self.auto_consume = auto_consume
        self.client_config = client_config or EngineConfig(is_client=True)
        self.server_config = server_config or EngineConfig(is_client=False)
        self.server_config = replace(
            self.server_config,
            certificate_der=cert.certificate_der,
            private_key_der=cert.private_key_der,
        )
        self.server_engine_name = server_engine
        self._server_factory = server_factory
        make_client = client_factory or (lambda cfg: create_engine(client_engine, cfg))
        self.client = Side(make_client(self.client_config))
        self.server: Side | None = None
        self.client.engine.connect(SERVER_ADDR, self.now)
        self.largest_datagram = {"client": 0, "server": 0}

    # --- moving datagrams -----------------------------------------------------------------------
    def _make_server(self, first: bytes) -> Side:
        dcid = initial_dcid(first)
        if self._server_factory is not None:
            engine = self._server_factory(self.server_config, dcid)
        else:
            engine = create_engine(
                self.server_engine_name,
                self.server_config,
                original_destination_connection_id=dcid,
            )
        return Side(engine)

    def _drain(self, side: Side) -> None:
        while (event := side.engine.next_event()) is not None:
            side.events.append(event)
            if self.auto_consume and hasattr(event, "data") and hasattr(event, "stream_id"):
                side.engine.consume(event.stream_id, len(event.data))

    def step(self) -> int:
        """One exchange in each direction; returns how many datagrams moved."""
        moved = 0
        to_server = [d for d, _ in self.client.engine.datagrams_to_send(self.now)]
        self._record("client", to_server)
        if to_server:
            if self.server is None:
                self.server = self._make_server(to_server[0])
            self.server.engine.receive_datagrams(to_server, CLIENT_ADDR, self.now)
            moved += len(to_server)
        if self.server is not None:
            self._drain(self.server)
            to_client = [d for d, _ in self.server.engine.datagrams_to_send(self.now)]
            self._record("server", to_client)
            if to_client:
                self.client.engine.receive_datagrams(to_client, SERVER_ADDR, self.now)
                moved += len(to_client)
        self._drain(self.client)
        return moved

    def _record(self, sender: str, datagrams: list[bytes]) -> None:
        if datagrams:
            largest = max(len(d) for d in datagrams)
            self.largest_datagram[sender] = max(self.largest_datagram[sender], largest)

    def fire_timers(self) -> bool:
        """Advance the clock to the earliest timer and run it; False if none is armed."""
        sides = [s for s in (self.client, self.server) if s is not None]
        timers = [(t, s) for s in sides if (t := s.engine.get_timer()) is not None]
        if not timers:
            return False
        at = min(t for t, _ in timers)
        self.now = max(self.now, at)
        for t, side in timers:
            if t <= self.now:
                side.engine.handle_timer(self.now)
                self._drain(side)
        return True

    def run(self, until: Callable[[], bool] | None = None, max_steps: int = 20_000) -> None:
        """Exchange datagrams, advancing the clock only when the wire is quiet."""
        for _ in range(max_steps):
            if until is not None and until():
                return
            if self.step() == 0:
                if until is None:
                    return
                # A quiet wire: let time pass (ack delay, pacing, loss timers).
                if not self.fire_timers():
                    break
            else:
                self.now += 0.0001  # a loopback-ish 100 µs per flight
        if until is not None:
            assert until(), "condition not reached within the step bound"

    def quiesce(self, max_steps: int = 20_000) -> None:
        """Exchange until no side has anything to send (timers are not fired)."""
        for _ in range(max_steps):
            if self.step() == 0:
                return
            self.now += 0.0001
        raise AssertionError("pair did not go quiet")

    def settle(self, horizon: float = 1.0, max_rounds: int = 200) -> None:
        """Exchange, running timers due within ``horizon`` s (acks, probes), until nothing is.

        The idle timer lies beyond the horizon, so a settled pair is still connected.
        """
        for _ in range(max_rounds):
            self.quiesce()
            sides = [s for s in (self.client, self.server) if s is not None]
            timers = [t for s in sides if (t := s.engine.get_timer()) is not None]
            if not timers or min(timers) - self.now > horizon:
                return
            self.fire_timers()
        raise AssertionError("pair did not settle")

    def handshake(self) -> None:
        from py_libp2p_webtransport.engine import HandshakeCompleted

        self.run(
            lambda: (
                self.server is not None
                and bool(self.client.of_type(HandshakeCompleted))
                and bool(self.server.of_type(HandshakeCompleted))
            ),
            max_steps=200,
        )
        self.quiesce()

    @property
    def srv(self) -> Side:
        assert self.server is not None
        return self.server
