"""Helpers of the endpoint tests: certificate, configs, echo/collect handlers, bounded waits and
``endpoint_pair`` (a running server and client endpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import trio

from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.endpoint import Endpoint, EndpointConnection, EndpointOptions
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


async def echo_once(conn: EndpointConnection, handler: CollectHandler, payload: bytes) -> bytes:
    """Send ``payload`` on a new stream with FIN; return what came back once that stream ended."""
    sid = conn.engine.get_next_available_stream_id()
    conn.engine.send_stream_data(sid, payload, end_stream=True)
    conn.transmit_soon()
    await handler.finished_event(sid).wait()
    return bytes(handler.data[sid])


async def wait_until(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait (bounded) for a condition the pump makes true; sleeps between checks."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.005)
        return
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class EndpointPair:
    """A running server endpoint (``handlers``: each accepted connection's handler, in order)
    and a running client endpoint; ``nursery`` runs both pumps and whatever else a test starts
    (cancelled once both endpoints have closed)."""

    server: Endpoint
    client: Endpoint
    handlers: dict[EndpointConnection, Any]
    nursery: trio.Nursery

    def dial(
        self,
        handler: Any = None,
        *,
        engine: str | None = None,
        addr: tuple[Any, ...] | None = None,
    ) -> tuple[EndpointConnection, Any]:
        """Start a client connection (to the server unless ``addr``) with ``handler`` (default:
        a fresh ``CollectHandler``); the handshake runs on the pumps."""
        target = addr if addr is not None else self.server.local_address[:2]
        conn = self.client.connect(target, CLIENT_CONFIG, engine=engine)
        conn.handler = handler if handler is not None else CollectHandler()
        return conn, conn.handler

    async def connect(self, handler: Any = None, **kwargs: Any) -> tuple[EndpointConnection, Any]:
        """``dial``, then wait for the client's handshake (the handler must have ``handshake``)."""
        conn, handler = self.dial(handler, **kwargs)
        await handler.handshake.wait()
        return conn, handler


@asynccontextmanager
async def endpoint_pair(
    engine: str,
    udp: ModuleType | None,
    certificate: Certificate,
    *,
    host: str = "127.0.0.1",
    client_host: str | None = None,
    client_dual_stack: bool = False,
    handler_type: type = EchoHandler,
    timeout: float = 20.0,
    **server_options: Any,
) -> AsyncIterator[EndpointPair]:
    """Bind a server on ``host`` (``server_options`` go to its ``EndpointOptions``; the server
    config defaults to ``server_config(certificate)``) and a client on ``client_host`` (default
    ``host``), run both for the block (bounded by ``timeout``), then close both."""
    handlers: dict[EndpointConnection, Any] = {}

    def on_connection(conn: EndpointConnection) -> None:
        conn.handler = handlers[conn] = handler_type()

    server_options.setdefault("server_config", server_config(certificate))
    server = await Endpoint.bind(
        host,
        0,
        EndpointOptions(engine=engine, udp=udp, **server_options),
        on_connection=on_connection,
    )
    client_options = EndpointOptions(engine=engine, udp=udp, dual_stack=client_dual_stack)
    client = await Endpoint.bind(client_host or host, 0, client_options)
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            nursery.start_soon(client.run)
            yield EndpointPair(server, client, handlers, nursery)
            client.close()
            server.close()
            await client.wait_closed()
            await server.wait_closed()
            nursery.cancel_scope.cancel()  # a test's own tasks (a proxy...) end with the pair
