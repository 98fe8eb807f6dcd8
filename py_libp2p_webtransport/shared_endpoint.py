"""One UDP socket for ``/quic-v1`` and ``/quic-v1/webtransport``: the shared endpoint registry
and the ALPN demultiplexer (go-libp2p's quicreuse).

A listener does not bind its own endpoint: it attaches to the host's endpoint for that address
(``attach``), offering one ALPN (``h3`` for WebTransport, ``libp2p`` for QUIC) with its own
certificate. The endpoint's server configuration offers every attached ALPN; the certificate is
chosen per negotiated ALPN (``EngineConfig.alpn_certificates``) and ``libp2p`` asks for the
client's certificate. A new connection gets a ``_Demux`` handler; at ``HandshakeCompleted`` it
hands the connection to the listener of the negotiated ALPN, which sets its own handler and gets
the batch of events. A client offering none of them is refused by the TLS stack with an alert
and counted in ``EndpointStats.alpn_refused``.

Entries are keyed by the host's peer id and the requested address: two listeners of one host on
the same ``host:port`` (or both on port 0 of the same host) share one socket; different hosts
never share. Dials use ``dial_endpoint``: the listening socket of the address family when the
host listens, so the peer observes our listen port.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from typing import Any, Protocol

import trio
from libp2p.peer.id import ID

from .endpoint import Endpoint, EndpointConnection, EndpointOptions
from .engine.base import ConnectionTerminated, EngineConfig, HandshakeCompleted
from .errors import ListenError
from .gating import PreHandshakeAdmission, Reservation

__all__ = ["AlpnService", "SharedEndpoint", "attach", "dial_endpoint", "shared_endpoints"]

logger = logging.getLogger(__name__)

#: CRYPTO_ERROR for the TLS alert no_application_protocol (aioquic's choice for no common ALPN).
NO_APPLICATION_PROTOCOL = 0x100 + 120
_ALPN_ORDER = ("h3", "libp2p")  # the server's preference when a client offers both


class AlpnService(Protocol):
    """A listener served on a shared endpoint (``WebTransportListener``, ``QuicListener``)."""

    #: The ALPN it serves.
    alpn: str

    def server_config(self) -> EngineConfig:
        """Its complete server configuration (its certificate, its knobs)."""
        ...

    def on_connection(self, conn: EndpointConnection) -> None:
        """A connection negotiated ``alpn``: set ``conn.handler`` now (inside the pump)."""
        ...


class SharedEndpoint:
    """One bound endpoint and the ALPN services attached to it."""

    def __init__(self, key: tuple[str, str, int], endpoint: Endpoint, requested_port: int) -> None:
        self.key = key
        self.endpoint = endpoint
        self.requested_port = requested_port
        self.services: dict[str, AlpnService] = {}
        #: The admission whose verdict the socket asks (the binding listener's): every
        #: listener of the socket claims its connections' reservations here.
        self.admission: PreHandshakeAdmission | None = None

    def claim(self, addr: Any) -> Reservation | None:
        """The admission's reservation for the connection from ``addr`` (None if none)."""
        return None if self.admission is None else self.admission.claim(addr)

    def refresh(self) -> None:
        """Rebuild the server configuration (after an attach, a detach or a rotation)."""
        if not self.services:
            return
        alpns = sorted(self.services, key=lambda a: _ALPN_ORDER.index(a) if a in _ALPN_ORDER else 9)
        configs = {alpn: self.services[alpn].server_config() for alpn in alpns}
        first = configs[alpns[0]]
        self.endpoint.server_config = replace(
            first,
            alpn_protocols=tuple(alpns),
            alpn_certificates=tuple(
                (alpn, config.certificate_der, config.private_key_der)  # type: ignore[misc]
                for alpn, config in configs.items()
                if alpn != alpns[0]
            ),
            client_auth_alpns=tuple(
                alpn for alpn, config in configs.items() if alpn in config.client_auth_alpns
            ),
        )

    def on_connection(self, conn: EndpointConnection) -> None:
        conn.handler = _Demux(self)

    def detach(self, service: AlpnService) -> None:
        """Stop serving ``service``'s ALPN; the last one out closes the socket."""
        if self.services.get(service.alpn) is not service:
            return
        del self.services[service.alpn]
        if self.services:
            self.refresh()
            return
        _REGISTRY.pop(self.key, None)
        self.endpoint.close()

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in str(self.endpoint.local_address[0]) else socket.AF_INET


class _Demux:
    """The handler of a server connection until its ALPN is known."""

    def __init__(self, shared: SharedEndpoint) -> None:
        self._shared = shared

    def handle_engine_events(self, conn: EndpointConnection, events: list[Any], now: float) -> None:
        for event in events:
            if isinstance(event, HandshakeCompleted):
                service = self._shared.services.get(event.alpn_protocol or "")
                if service is None:  # the listener left while the handshake ran
                    conn.engine.close(NO_APPLICATION_PROTOCOL, "no listener for this ALPN")
                    conn.transmit_soon()
                    return
                service.on_connection(conn)
                if conn.handler is not self and conn.handler is not None:
                    conn.handler.handle_engine_events(conn, events, now)
                return
            if isinstance(event, ConnectionTerminated):
                if "ALPN" in event.reason or event.error_code == NO_APPLICATION_PROTOCOL:
                    self._shared.endpoint.stats.alpn_refused += 1
                return

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


_REGISTRY: dict[tuple[str, str, int], SharedEndpoint] = {}
_ATTACH_LOCK = trio.Lock()


def shared_endpoints() -> list[SharedEndpoint]:
    """Every open shared endpoint of the process (diagnostics, tests)."""
    return list(_REGISTRY.values())


async def attach(
    peer: ID,
    host: str,
    port: int,
    service: AlpnService,
    options: EndpointOptions,
    nursery: trio.Nursery,
    admission: PreHandshakeAdmission | None = None,
) -> SharedEndpoint:
    """The host's endpoint for ``host:port`` with ``service`` attached; binds (and starts the
    pump in ``nursery``) when no listener of this host is there yet, with ``options`` and
    ``admission``'s verdict. Port 0: the host's endpoint on ``host`` port 0 that does not serve
    this ALPN yet, if any."""
    # A host listens on its addresses concurrently: one attach at a time, so the second
    # listener of an address finds the first one's endpoint.
    async with _ATTACH_LOCK:
        return await _attach(peer.to_base58(), host, port, service, options, nursery, admission)


async def _attach(
    peer_key: str,
    host: str,
    port: int,
    service: AlpnService,
    options: EndpointOptions,
    nursery: trio.Nursery,
    admission: PreHandshakeAdmission | None,
) -> SharedEndpoint:
    shared: SharedEndpoint | None = None
    if port == 0:
        for candidate in _REGISTRY.values():
            if (
                candidate.key[:2] == (peer_key, host)
                and candidate.requested_port == 0
                and service.alpn not in candidate.services
            ):
                shared = candidate
                break
    else:
        shared = _REGISTRY.get((peer_key, host, port))
    if shared is not None and service.alpn in shared.services:
        raise ListenError(f"{host}:{port} already serves ALPN {service.alpn!r} for this host")
    if shared is None:
        made: list[SharedEndpoint] = []
        if admission is not None:
            options = replace(options, address_verdict=admission.verdict)
        endpoint = await Endpoint.bind(
            host, port, options, on_connection=lambda conn: made[0].on_connection(conn)
        )
        shared = SharedEndpoint((peer_key, host, int(endpoint.local_address[1])), endpoint, port)
        shared.admission = admission
        made.append(shared)
        _REGISTRY[shared.key] = shared
        nursery.start_soon(_run, shared)
    shared.services[service.alpn] = service
    shared.refresh()
    return shared


async def _run(shared: SharedEndpoint) -> None:
    try:
        await shared.endpoint.run()
    finally:
        if _REGISTRY.get(shared.key) is shared:
            del _REGISTRY[shared.key]


def dial_endpoint(peer: ID, family: int) -> Endpoint | None:
    """The host's listening endpoint of ``family`` to dial from, if it listens on one."""
    peer_key = peer.to_base58()
    for shared in _REGISTRY.values():
        if shared.key[0] == peer_key and shared.services and shared.family == family:
            return shared.endpoint
    return None
