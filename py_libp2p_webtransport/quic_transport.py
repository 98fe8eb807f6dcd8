"""``QuicTransport``: py-libp2p's ``ITransport`` for ``/quic-v1`` (libp2p over QUIC, ALPN
``libp2p``), on the same engines and pump as WebTransport.

Usable alone or next to ``WebTransportTransport``. In one host the two share their sockets:
listening on ``/udp/P/quic-v1`` and ``/udp/P/quic-v1/webtransport`` binds one UDP socket
(``shared_endpoint.py`` demultiplexes by ALPN), and dials of either kind leave from the host's
listening socket of their address family. Authentication is TLS alone (``libp2p_tls.py``): the
certificate is made once per transport from the host key; both sides check the other's at the
end of the QUIC handshake (``quic_conn.py``). Draft-29 ``/quic`` addresses are refused with a
clear error. Knobs are ``WebTransportConfig``'s (engine, windows, timeouts, write limits).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import trio
from libp2p.abc import IListener, ITransport
from libp2p.crypto.keys import PrivateKey
from libp2p.custom_types import THandler
from multiaddr import Multiaddr

from . import shared_endpoint
from .config import WebTransportConfig
from .endpoint import Endpoint, EndpointConnection
from .engine.base import EngineConfig
from .errors import (
    AddressError,
    DialError,
    DialTimeout,
    ListenError,
    Unreachable,
)
from .gating import Reservation
from .handshake import resolve
from .libp2p_tls import ALPN, make_certificate
from .listener import _concrete_addresses, endpoint_options
from .multiaddr import QuicAddress, is_quic_multiaddr, parse_quic_multiaddr
from .quic_conn import BAD_CERTIFICATE, QuicConnection, quic_multiaddr
from .transport_base import ListenerBase, TransportBase, pre_handshake_admission

__all__ = ["BAD_CERTIFICATE", "QuicListener", "QuicTransport"]

logger = logging.getLogger(__name__)


class QuicTransport(TransportBase[QuicConnection], ITransport):
    """libp2p over QUIC v1 (``/quic-v1``): TLS 1.3 with the libp2p certificate, one libp2p
    stream per bidirectional QUIC stream."""

    provides_native_muxing: bool = True

    def __init__(self, private_key: PrivateKey, config: WebTransportConfig | None = None) -> None:
        super().__init__(private_key, config)
        self.certificate = make_certificate(private_key, self.config.clock())
        self._listeners: list[QuicListener] = []

    # --- TransportManager hooks ---------------------------------------------------------------

    def listen_order(self) -> int:
        """Before py-libp2p's own QUIC transport (1), after WebTransport (-1)."""
        return 0

    def protocols(self) -> list[str]:
        return ["quic-v1", "quic"]

    def can_dial(self, maddr: Multiaddr) -> bool:
        """``/quic-v1`` addresses (and draft-29 ``/quic`` ones, to refuse them clearly)."""
        return is_quic_multiaddr(maddr, draft29=True)

    def can_listen(self, maddr: Multiaddr) -> bool:
        return is_quic_multiaddr(maddr, draft29=True)

    def _check_private_network(self, error: type[DialError] | type[ListenError]) -> None:
        if getattr(self._swarm, "psk", None) is not None:
            raise error("QUIC cannot run in a private network (PSK); use TCP for pnet")

    # --- engines and nurseries ----------------------------------------------------------------

    def engine_config(self, *, is_client: bool) -> EngineConfig:
        """A connection's QUIC configuration: ALPN ``libp2p``, our libp2p certificate on both
        sides, and servers ask for the client's."""
        base = self.config.engine_config(
            is_client=is_client,
            # only listeners answer with stateless resets
            stateless_reset_secret=None if is_client else self.reset_secret,
        )
        return replace(
            base,
            alpn_protocols=(ALPN,),
            certificate_der=self.certificate.der,
            private_key_der=self.certificate.key_der,
            client_auth_alpns=() if is_client else (ALPN,),
            max_datagram_frame_size=0,  # no DATAGRAM frames in libp2p over QUIC
        )

    # --- listening and dialing ----------------------------------------------------------------

    def create_listener(self, handler_function: THandler) -> QuicListener:
        if self._closed:
            raise ListenError("transport is closed")
        listener = QuicListener(self, handler_function)
        self._listeners.append(listener)
        return listener

    async def dial(self, maddr: Multiaddr) -> QuicConnection:
        """Dial a ``/quic-v1`` address; returns a connection whose peer's certificate was
        verified (and matched ``/p2p/`` when the address names the peer)."""
        if self._closed:
            raise DialError("transport is closed")
        self._check_private_network(DialError)
        try:
            addr = parse_quic_multiaddr(maddr)
        except AddressError as error:
            raise DialError(str(error)) from error
        started = time.monotonic()
        try:
            conn = await self._handshake(addr, maddr)
        except DialError as error:
            if self.metrics is not None:
                self.metrics.handshake_failed("quic", "outbound", error)
            raise
        self._connections.add(conn)  # until it closes
        logger.debug("dialed %s in %.1f ms", maddr, (time.monotonic() - started) * 1e3)
        return conn

    async def _handshake(self, addr: QuicAddress, maddr: Multiaddr) -> QuicConnection:
        """The dial's QUIC + TLS handshake: an authenticated connection, or a ``DialError``."""
        conn: QuicConnection | None = None
        try:
            with trio.fail_after(self.config.connect_timeout):
                sockaddr, family = await resolve(addr)  # type: ignore[arg-type]
                endpoint = await self._client_endpoint(family)
                ep_conn = endpoint.connect(
                    sockaddr, self.engine_config(is_client=True), engine=self.engine_name
                )
                conn = QuicConnection(
                    ep_conn,
                    is_initiator=True,
                    config=self.config,
                    local_peer=self.local_peer,
                    expected_peer=addr.peer_id,
                )
                await conn.authenticated.wait()
        except trio.TooSlowError:
            if conn is not None:
                await conn.close()
            raise DialTimeout(
                f"no QUIC handshake with {addr.host}:{addr.port} within "
                f"{self.config.connect_timeout} s"
            ) from None
        failure = conn.authentication_error
        if failure is not None:
            if type(failure) is DialError:  # the connection ended before it was authenticated
                raise Unreachable(f"QUIC dial of {maddr} failed: {failure}") from failure
            raise failure
        return conn


class QuicListener(ListenerBase[QuicConnection], IListener):
    """Serves ALPN ``libp2p`` on one UDP address (shared with WebTransport when the host
    listens there too)."""

    alpn = ALPN

    def __init__(self, transport: QuicTransport, handler: THandler) -> None:
        super().__init__(handler)
        self._transport = transport
        self._shared: shared_endpoint.SharedEndpoint | None = None
        self._nursery: trio.Nursery | None = None
        #: set by the swarm before ``listen`` (py-libp2p convention)
        self.background_nursery: trio.Nursery | None = None

    async def listen(self, maddr: Multiaddr) -> None:
        """Bind (or share) ``/ip4|ip6/…/udp/PORT/quic-v1``."""
        if self._shared is not None:
            raise ListenError("this listener is already listening")
        self._transport._check_private_network(ListenError)
        try:
            addr = parse_quic_multiaddr(maddr)
        except AddressError as error:
            raise ListenError(f"cannot listen on {maddr}: {error}") from error
        if addr.peer_id is not None or addr.is_dns:
            raise ListenError(f"cannot listen on {maddr}: an IP address without /p2p is needed")
        nursery = await self._transport.get_nursery(self.background_nursery)
        self._nursery = nursery
        config = self._transport.config
        try:
            self._shared = await shared_endpoint.attach(
                self._transport.local_peer,
                addr.host,
                addr.port,
                self,
                endpoint_options(
                    config,
                    self._transport.engine_name,
                    # The same as the WebTransport listener's: the socket's Initials are
                    # admitted (and its strays reset) alike whichever listener binds it.
                    stateless_reset_secret=self._transport.reset_secret,
                ),
                nursery,
                pre_handshake_admission(self._transport),
            )
        except OSError as error:
            raise ListenError(f"cannot bind {addr.host}:{addr.port}: {error}") from error
        self._transport.watch_endpoint(self._shared.endpoint, nursery)
        logger.info("QUIC listening on %s", ", ".join(map(str, self.get_addrs())))

    @property
    def endpoint(self) -> Endpoint | None:
        return None if self._shared is None else self._shared.endpoint

    def get_addrs(self) -> tuple[Multiaddr, ...]:
        if self._shared is None or self._closed:
            return ()
        bound = self._shared.endpoint.local_address
        return tuple(quic_multiaddr(address) for address in _concrete_addresses(bound))

    # --- shared_endpoint.AlpnService ------------------------------------------------------------

    def server_config(self) -> EngineConfig:
        return self._transport.engine_config(is_client=False)

    def on_connection(self, endpoint_conn: EndpointConnection) -> None:
        """A connection negotiated ``libp2p`` (inside the pump; its events follow at once)."""
        transport = self._transport
        reservation = self._claim(self._shared, endpoint_conn)
        if self._busy(transport.config.max_pending_handshakes):
            if reservation is not None:
                reservation.release()
            endpoint_conn.engine.close(0x2, "too many handshakes")  # CONNECTION_REFUSED
            endpoint_conn.transmit_soon()
            return
        conn = QuicConnection(
            endpoint_conn,
            is_initiator=False,
            config=transport.config,
            local_peer=transport.local_peer,
        )
        self._pending += 1
        assert self._nursery is not None
        self._nursery.start_soon(self._accept, conn, reservation)

    async def _accept(self, conn: QuicConnection, reservation: Reservation | None) -> None:
        try:
            await conn.authenticated.wait()
        finally:
            self._pending -= 1
            self._settle(reservation, conn, accepted=conn.authentication_error is None)
        failure = conn.authentication_error
        if failure is not None or conn.is_closed:
            logger.info("QUIC handshake from %s refused: %s", conn.get_remote_address(), failure)
            metrics = self._transport.metrics
            if failure is not None and metrics is not None:
                metrics.handshake_failed("quic", "inbound", failure)
            return
        await self._serve(conn)  # the handler, until the connection closes

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._close_connections()
        if self._shared is not None:
            self._shared.detach(self)

    def __repr__(self) -> str:
        return f"<QuicListener {[str(a) for a in self.get_addrs()]}>"
