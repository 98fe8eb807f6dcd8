"""A test-only WebTransport echo server built from our own layers.

``session.WebTransportH3`` (sans-IO HTTP/3 + WebTransport) runs over each QUIC connection that
``endpoint.Endpoint`` (the trio UDP pump) accepts. Client-opened bidi streams are echoed back,
FIN included. Once a session is up, the server can open bidi streams itself, send a payload with
FIN and collect what the client echoes. Everything the server sees is recorded for assertions.
The session layer itself answers 404 (wrong path) and 400 (wrong query) before the application
hears of a request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.endpoint import Endpoint, EndpointConnection, EndpointOptions
from py_libp2p_webtransport.engine.base import EngineConfig, EngineEvent
from py_libp2p_webtransport.session import (
    ConnectionClosed,
    H3Config,
    SessionClosed,
    SessionEstablished,
    SessionRequested,
    StreamDataReceived,
    StreamOpened,
    StreamReset,
    WebTransportH3,
)


def make_certificate() -> tuple[bytes, bytes]:
    """A throwaway certificate in the libp2p shape and its PKCS#8 key, both DER."""
    cert = ephemeral_certificate()
    return cert.der, cert.key_der


@dataclass
class ServerStream:
    """A bidi stream the server opened: what it sent and what came back."""

    stream_id: int
    sent: bytes
    received: bytearray = field(default_factory=bytearray)
    finished: bool = False
    reset_code: int | None = None


@dataclass
class ConnectionRecord:
    """What the server observed on one QUIC connection."""

    h3: WebTransportH3
    requests: list[SessionRequested] = field(default_factory=list)
    established: list[int] = field(default_factory=list)
    client_streams: dict[int, int] = field(default_factory=dict)  # stream id -> bytes echoed
    client_fins: set[int] = field(default_factory=set)
    server_streams: dict[int, ServerStream] = field(default_factory=dict)
    session_closed: list[SessionClosed] = field(default_factory=list)
    connection_closed: list[ConnectionClosed] = field(default_factory=list)

    @property
    def peer_settings(self) -> dict[int, int] | None:
        """The client's SETTINGS as our session layer decoded them."""
        return self.h3.peer_settings


class EchoSessionHandler:
    """The ``ConnectionHandler`` of one server connection: WebTransportH3 plus echo logic."""

    def __init__(
        self,
        conn: EndpointConnection,
        config: H3Config,
        server_payloads: list[bytes],
        now: float,
        changed: Callable[[], None],
    ) -> None:
        self.conn = conn
        self.h3 = WebTransportH3(conn.engine, is_client=False, config=config)
        self.record = ConnectionRecord(self.h3)
        self._server_payloads = server_payloads
        self._changed = changed
        self.h3.initialize(now)
        conn.transmit_soon()

    def handle_engine_events(
        self, conn: EndpointConnection, events: list[EngineEvent], now: float
    ) -> None:
        for ev in events:
            self.h3.handle_engine_event(ev, now)
        self._drain()
        conn.transmit_soon()

    def get_timer(self) -> float | None:
        return self.h3.get_timer()

    def handle_timer(self, now: float) -> None:
        self.h3.handle_timer(now)
        self._drain()
        self.conn.transmit_soon()

    def _drain(self) -> None:
        rec = self.record
        h3 = self.h3
        while (ev := h3.next_event()) is not None:
            if isinstance(ev, SessionRequested):
                rec.requests.append(ev)
                h3.accept_session(ev.session_id)
            elif isinstance(ev, SessionEstablished):
                rec.established.append(ev.session_id)
                for payload in self._server_payloads:
                    sid = h3.open_stream(ev.session_id, bidirectional=True)
                    h3.send_stream_data(sid, payload, end_stream=True)
                    rec.server_streams[sid] = ServerStream(sid, payload)
            elif isinstance(ev, StreamOpened):
                rec.client_streams.setdefault(ev.stream_id, 0)
            elif isinstance(ev, StreamDataReceived):
                h3.consume(ev.stream_id, len(ev.data))
                own = rec.server_streams.get(ev.stream_id)
                if own is not None:
                    own.received.extend(ev.data)
                    own.finished = own.finished or ev.end_stream
                else:
                    # A client-opened bidi stream: echo, FIN included.
                    h3.send_stream_data(ev.stream_id, ev.data, end_stream=ev.end_stream)
                    rec.client_streams[ev.stream_id] = rec.client_streams.get(
                        ev.stream_id, 0
                    ) + len(ev.data)
                    if ev.end_stream:
                        rec.client_fins.add(ev.stream_id)
            elif isinstance(ev, StreamReset):
                own = rec.server_streams.get(ev.stream_id)
                if own is not None:
                    own.reset_code = ev.raw_code
            elif isinstance(ev, SessionClosed):
                rec.session_closed.append(ev)
            elif isinstance(ev, ConnectionClosed):
                rec.connection_closed.append(ev)
        self._changed()


@dataclass
class EchoServer:
    """A running echo server: its URL base and what each connection recorded."""

    port: int
    records: list[ConnectionRecord] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def url(self, path: str = "/.well-known/libp2p-webtransport?type=noise") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait (bounded) until the recorded state satisfies ``predicate``."""
        with trio.move_on_after(timeout):
            while not predicate():
                await self.changed.wait()
            return
        raise AssertionError(f"server: timed out after {timeout} s waiting for {what}")


@asynccontextmanager
async def run_echo_server(
    engine: str,
    config: H3Config | None = None,
    server_payloads: list[bytes] | None = None,
) -> AsyncIterator[EchoServer]:
    """Serve WebTransport on an ephemeral 127.0.0.1 UDP port for the duration of the block."""
    cert_der, key_der = make_certificate()
    h3_config = config if config is not None else H3Config()
    payloads = list(server_payloads or [])
    server: EchoServer | None = None

    def on_connection(conn: EndpointConnection) -> None:
        assert server is not None
        handler = EchoSessionHandler(conn, h3_config, payloads, trio.current_time(), server._notify)
        conn.handler = handler
        server.records.append(handler.record)

    endpoint = await Endpoint.bind(
        "127.0.0.1",
        0,
        EndpointOptions(
            engine=engine,
            server_config=EngineConfig(
                is_client=False, certificate_der=cert_der, private_key_der=key_der
            ),
        ),
        on_connection=on_connection,
    )
    server = EchoServer(port=endpoint.local_address[1])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(endpoint.run)
        try:
            yield server
        finally:
            endpoint.close()
            with trio.move_on_after(5):
                await endpoint.wait_closed()
            nursery.cancel_scope.cancel()
