"""``WebTransportListener``: accepts WebTransport sessions and hands authenticated connections
to the swarm.

Per new QUIC connection: ``handshake.accept_session`` accepts the session (the session layer
answers wrong paths with 404/400) and runs the Noise responder with our certhashes; only then
does the connection reach the swarm. The whole server-side handshake is bounded in time
(``handshake_timeout``) and in concurrency (``max_pending_handshakes``). The certificate is
chosen per connection, so rotation needs no restart.

The listener knows its transport only through ``ListenerOwner`` (configuration, keys,
certificates, the background nursery).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any, Protocol

import trio
from libp2p.abc import IListener
from libp2p.crypto.keys import PrivateKey
from libp2p.custom_types import THandler
from libp2p.peer.id import ID
from libp2p.utils.address_validation import get_available_interfaces
from multiaddr import Multiaddr

from . import multiaddr as wt_multiaddr
from . import shared_endpoint
from .certs import CertManager
from .config import WebTransportConfig
from .conn import WebTransportConnection, transport_multiaddr
from .constants import H3ErrorCode
from .endpoint import Endpoint, EndpointConnection, EndpointOptions
from .engine.base import EngineConfig
from .errors import DialError, ListenError, WebTransportError
from .gating import Reservation
from .handshake import HANDSHAKE_STREAM_LINGER, accept_session
from .transport_base import ListenerBase, pre_handshake_admission

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["HANDSHAKE_STREAM_LINGER", "ListenerOwner", "WebTransportListener"]

logger = logging.getLogger(__name__)


class ListenerOwner(Protocol):
    """What a listener needs from its transport (``WebTransportTransport`` provides it)."""

    private_key: PrivateKey
    local_peer: ID
    config: WebTransportConfig
    cert_manager: CertManager
    engine_name: str
    metrics: Metrics | None

    def engine_config(self, *, is_client: bool, server_name: str | None = None) -> EngineConfig:
        """The QUIC configuration of a connection (servers: the current certificate)."""
        ...

    def connection_gate(self) -> Any:
        """The connection gater consulted before the handshake (None: none)."""
        ...

    def resource_manager(self) -> Any:
        """The resource manager consulted before the handshake (None: none)."""
        ...

    async def get_nursery(self, preferred: trio.Nursery | None = None) -> trio.Nursery:
        """Where the endpoint and the handshakes run: ``preferred``, else the transport's."""
        ...

    def check_private_network(self, error: type[WebTransportError]) -> None:
        """Raise ``error`` when the swarm runs a private network (PSK)."""
        ...

    def watch_endpoint(self, endpoint: Endpoint, nursery: trio.Nursery) -> None:
        """Metrics on: export the endpoint's counters (nothing otherwise)."""
        ...


def endpoint_options(
    config: WebTransportConfig,
    engine: str,
    *,
    stateless_reset_secret: bytes | None = None,
) -> EndpointOptions:
    """The options of a listening endpoint (Retry, stateless resets); the server configuration
    and the admission verdict are set by ``shared_endpoint`` for every ALPN it serves."""
    return EndpointOptions(
        engine=engine,
        server_config=EngineConfig(is_client=False),
        max_half_open=config.max_pending_handshakes,
        retry=config.retry,
        retry_threshold=config.retry_threshold,
        stateless_reset_secret=stateless_reset_secret,
    )


class WebTransportListener(ListenerBase[WebTransportConnection], IListener):
    """Listens on one UDP address for WebTransport sessions (ALPN ``h3``)."""

    alpn = "h3"

    def __init__(self, transport: ListenerOwner, handler: THandler) -> None:
        super().__init__(handler)
        self._transport = transport
        self._endpoint: Endpoint | None = None
        self._shared: shared_endpoint.SharedEndpoint | None = None
        self._nursery: trio.Nursery | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._addrs_cache: tuple[tuple[Any, tuple[bytes, ...]], tuple[Multiaddr, ...]] | None = None
        #: set by the swarm before ``listen`` (py-libp2p convention); used for handler tasks
        self.background_nursery: trio.Nursery | None = None

    # --- IListener ----------------------------------------------------------------------------

    async def listen(self, maddr: Multiaddr) -> None:
        """Bind ``maddr`` (``/ip4|ip6/…/udp/PORT/quic-v1/webtransport``, no certhash)."""
        if self._endpoint is not None:
            raise ListenError("this listener is already listening")
        self._transport.check_private_network(ListenError)
        host, port = self._parse_listen_addr(maddr)
        config = self._transport.engine_config(is_client=False)
        nursery = await self._transport.get_nursery(self.background_nursery)
        try:
            # One socket per address for the whole host: a QuicListener on the same address
            # shares it (shared_endpoint.py), and the host's dials leave from it.
            shared = await shared_endpoint.attach(
                self._transport.local_peer,
                host,
                port,
                self,
                endpoint_options(
                    self._transport.config,
                    self._transport.engine_name,
                    # Both apply to every ALPN of the socket when this listener binds it.
                    stateless_reset_secret=config.stateless_reset_secret,
                ),
                nursery,
                pre_handshake_admission(self._transport),
            )
        except OSError as error:
            raise ListenError(f"cannot bind {host}:{port}: {error}") from error
        self._shared = shared
        self._endpoint = endpoint = shared.endpoint
        # Every listener of the transport switches certificates at the rotation itself, whoever
        # noticed it (another listener, an address query, a new connection).
        self._transport.cert_manager.subscribe(self._on_rotation)
        self._nursery = nursery
        self._transport.watch_endpoint(endpoint, nursery)
        nursery.start_soon(self._run)
        logger.info("WebTransport listening on %s", ", ".join(map(str, self.get_addrs())))

    @staticmethod
    def _parse_listen_addr(maddr: Multiaddr) -> tuple[str, int]:
        if not wt_multiaddr.is_webtransport_multiaddr(maddr):
            raise ListenError(f"not a WebTransport multiaddr: {maddr}")
        try:
            addr = wt_multiaddr.parse_webtransport_multiaddr(maddr)
        except WebTransportError as error:
            raise ListenError(f"invalid WebTransport multiaddr {maddr}: {error}") from error
        if addr.certhashes:
            raise ListenError(
                f"cannot listen on {maddr}: it carries a /certhash (certificates are ours)"
            )
        if addr.peer_id is not None:
            raise ListenError(f"cannot listen on {maddr}: it carries a /p2p component")
        if addr.is_dns:
            raise ListenError(f"cannot listen on a DNS name: {maddr}")
        return addr.host, addr.port

    @property
    def endpoint(self) -> Endpoint | None:
        """The UDP endpoint once listening (for diagnostics: ``stats``, ``connections``)."""
        return self._endpoint

    def get_addrs(self) -> tuple[Multiaddr, ...]:
        """The bound address with ``/certhash/<current>/certhash/<next>``."""
        if self._endpoint is None or self._closed:
            return ()
        self.rotate_certificates()
        hashes = tuple(self._transport.cert_manager.advertised_certhashes())
        bound = self._endpoint.local_address
        # py-libp2p asks for them several times per connection (identify, get_addrs) and
        # building them costs ~0.4 ms (py-multibase): reuse them until the certhashes change.
        # A wildcard bind is re-expanded every time, as interfaces may come and go.
        if self._addrs_cache is not None and self._addrs_cache[0] == (bound, hashes):
            return self._addrs_cache[1]
        addrs = tuple(
            wt_multiaddr.with_certhashes(transport_multiaddr(address), hashes)
            for address in _concrete_addresses(bound)
        )
        if str(bound[0]) not in ("0.0.0.0", "::"):
            self._addrs_cache = ((bound, hashes), addrs)
        return addrs

    async def close(self) -> None:
        """Stop accepting, close every connection of this listener, release the socket."""
        if self._closed:
            return
        self._closed = True
        self._transport.cert_manager.unsubscribe(self._on_rotation)
        # Sessions first (close capsules go out while the pump still runs), then the socket.
        await self._close_connections()
        if self._shared is not None:
            self._shared.detach(self)  # the socket closes with the last ALPN on it
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    # --- certificates -------------------------------------------------------------------------

    def rotate_certificates(self) -> bool:
        """Rotate when due (per the certificate manager's clock); new connections use the new
        certificate at once. Returns True when it rotated since the manager last reported."""
        return self._transport.cert_manager.maybe_rotate()

    def server_config(self) -> EngineConfig:
        """Our ALPN's server configuration: the current certhash certificate."""
        return self._transport.engine_config(is_client=False)

    def _on_rotation(self) -> None:
        if self._shared is not None and not self._closed:
            self._shared.refresh()
            logger.info("WebTransport certificate rotated")

    async def _run(self) -> None:
        # The endpoint's pump runs in shared_endpoint's task: it outlives this listener when
        # a QuicListener still serves the socket.
        with trio.CancelScope() as scope:
            self._cancel_scope = scope
            await self._rotation_loop()

    async def _rotation_loop(self) -> None:
        manager = self._transport.cert_manager
        while True:
            due = manager.next_rotation
            # Wall clock of the manager vs trio's clock: sleep in bounded steps so a clock
            # change never makes us oversleep a rotation by more than an hour.
            await trio.sleep(min(max(due - self._transport.config.clock(), 1.0), 3600.0))
            self.rotate_certificates()

    # --- accepting ----------------------------------------------------------------------------

    def on_connection(self, endpoint_conn: EndpointConnection) -> None:
        """A QUIC connection negotiated ``h3`` (called synchronously by the endpoint pump)."""
        transport = self._transport
        reservation = self._claim(self._shared, endpoint_conn)
        if self._busy(transport.config.max_pending_handshakes):
            if reservation is not None:
                reservation.release()
            logger.warning("WebTransport listener busy: refusing a new connection")
            endpoint_conn.engine.close(H3ErrorCode.H3_EXCESSIVE_LOAD, "too many handshakes")
            endpoint_conn.transmit_soon()
            return
        conn = WebTransportConnection(
            endpoint_conn,
            is_initiator=False,
            config=transport.config,
            local_peer=transport.local_peer,
        )
        self._pending += 1
        assert self._nursery is not None
        self._nursery.start_soon(self._accept, conn, reservation)

    async def _accept(
        self, conn: WebTransportConnection, reservation: Reservation | None = None
    ) -> None:
        transport = self._transport
        assert self._nursery is not None
        session = None
        try:
            session = await accept_session(
                conn,
                private_key=transport.private_key,
                certhashes=transport.cert_manager.noise_certhashes(),
                timeout=transport.config.handshake_timeout,
                linger_nursery=self._nursery,
            )
        except DialError as error:
            logger.info(
                "WebTransport handshake from %s failed: %s", conn.get_remote_address(), error
            )
            if transport.metrics is not None:
                transport.metrics.handshake_failed("webtransport", "inbound", error)
            return
        finally:
            self._pending -= 1
            self._settle(reservation, conn, accepted=session is not None)
        if session is None or conn.is_closed:
            return
        await self._serve(conn)  # the handler, until the connection closes

    def __repr__(self) -> str:
        return f"<WebTransportListener {[str(a) for a in self.get_addrs()]}>"


def _concrete_addresses(bound: tuple[Any, ...]) -> list[tuple[str, int]]:
    """A wildcard bind (0.0.0.0 / ::) becomes one address per interface of its family, so the
    advertised multiaddrs can be dialed (py-libp2p's host does not expand them for us)."""
    host, port = str(bound[0]), int(bound[1])
    if host not in ("0.0.0.0", "::"):
        return [(host, port)]
    family = "ip6" if host == "::" else "ip4"
    out: list[tuple[str, int]] = []
    for maddr in get_available_interfaces(port, protocol="udp"):
        try:
            ip = maddr.value_for_protocol(family)
        except Exception:  # an address of the other family
            continue
        if ip and not ipaddress.ip_address(ip).is_link_local and (ip, port) not in out:
            out.append((ip, port))
    return out or [(host, port)]
