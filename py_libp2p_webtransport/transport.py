"""``WebTransportTransport``: py-libp2p's ``ITransport`` for ``/quic-v1/webtransport``.

Register it explicitly (py-libp2p has no transport registry)::

    kp = create_new_key_pair()
    host = new_host(key_pair=kp, transports=[WebTransportTransport(kp.private_key)],
                    listen_addrs=[Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")])

``listen_order()`` is below the QUIC transport's, so py-libp2p's QUIC transport (whose address
check also matches ``/quic-v1/webtransport``) never claims our addresses in the same host.

The transport holds the configuration, the engine choice, the certificates, one shared client
endpoint per address family and the background nursery; the dial itself (QUIC, certhash pin,
CONNECT, Noise) is ``handshake.dial_session``. Every failure raises a typed
:class:`~py_libp2p_webtransport.errors.DialError` within ``connect_timeout`` +
``handshake_timeout``.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import trio
from libp2p.abc import ITransport
from libp2p.crypto.keys import PrivateKey
from libp2p.custom_types import THandler
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from . import multiaddr as wt_multiaddr
from . import shared_endpoint
from .certs import CertManager
from .config import WebTransportConfig
from .conn import WebTransportConnection
from .endpoint import Endpoint, EndpointOptions
from .engine import DEFAULT_ENGINE, available_engines
from .engine.base import EngineConfig
from .engine.reset_token import derive_reset_secret
from .errors import DialError, ListenError, Unreachable, WebTransportError
from .gating import configured_gate, configured_resource_manager
from .handshake import NOISE_PATH, authority, dial_session
from .listener import WebTransportListener

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["NOISE_PATH", "WebTransportTransport", "default_engine"]

logger = logging.getLogger(__name__)

# The former private helper, for code that still builds a session by hand.
_authority = authority


class WebTransportTransport(ITransport):
    """libp2p transport over WebTransport (HTTP/3 over QUIC) with certhash-pinned certs."""

    provides_native_muxing: bool = True

    def __init__(self, private_key: PrivateKey, config: WebTransportConfig | None = None) -> None:
        self.private_key = private_key
        self.config = config or WebTransportConfig()
        self.local_peer = ID.from_pubkey(private_key.get_public_key())
        self.engine_name = self.config.engine or default_engine()
        self.cert_manager: CertManager = self.config.cert_manager or CertManager(
            private_key, clock=self.config.clock
        )
        #: The stateless reset secret, from the host key (None: ``config.stateless_reset`` off).
        self.reset_secret: bytes | None = (
            derive_reset_secret(private_key.to_bytes()) if self.config.stateless_reset else None
        )
        self._nursery: trio.Nursery | None = None
        self._own_nursery_lock = trio.Lock()
        self._own_scope: trio.CancelScope | None = None  # our own system task, if we made one
        self._swarm: Any = None
        self._client_endpoints: dict[int, Endpoint] = {}
        self._client_lock = trio.Lock()
        self._listeners: list[WebTransportListener] = []
        self._connections: set[WebTransportConnection] = set()
        self._closed = False
        self.metrics: Metrics | None = None
        self._sampling = False  # the metrics' sampler of our connections is running
        if self.config.metrics:
            from .metrics import Metrics  # loaded only when asked for

            self.metrics = Metrics.get()
            self.metrics.watch_certificates(self.cert_manager)

    # --- TransportManager hooks ---------------------------------------------------------------

    def listen_order(self) -> int:
        """Sort before py-libp2p's QUIC transport (1), which would claim our addresses."""
        return -1

    def protocols(self) -> list[str]:
        """Protocol names the transport manager pre-filters addresses with."""
        return ["webtransport"]

    def can_dial(self, maddr: Multiaddr) -> bool:
        """True for ``/ip4|ip6|dns*/…/udp/…/quic-v1/webtransport[/certhash…][/p2p/…]``."""
        return wt_multiaddr.is_webtransport_multiaddr(maddr)

    def can_listen(self, maddr: Multiaddr) -> bool:
        """True for WebTransport addresses (``listen`` rejects one carrying a certhash)."""
        return wt_multiaddr.is_webtransport_multiaddr(maddr)

    def set_background_nursery(self, nursery: trio.Nursery) -> None:
        """The swarm's nursery: endpoint pumps and connection tasks run there."""
        self._nursery = nursery

    def set_swarm(self, swarm: Any) -> None:
        """Keep the swarm to refuse private networks (a PSK cannot wrap a muxed connection)."""
        self._swarm = swarm

    def connection_gate(self) -> Any:
        """The connection gater asked before each handshake (``gating.configured_gate``)."""
        return configured_gate(self.config, self._swarm)

    def resource_manager(self) -> Any:
        """The resource manager asked before each handshake (``gating``)."""
        return configured_resource_manager(self.config, self._swarm)

    def check_private_network(self, error: type[WebTransportError]) -> None:
        """Raise ``error`` in a private network (a PSK cannot wrap a muxed connection)."""
        if getattr(self._swarm, "psk", None) is not None:
            raise error(
                "WebTransport cannot run in a private network (PSK): the swarm would wrap a "
                "natively multiplexed connection; use TCP or WebSocket transports for pnet"
            )

    # --- engines ------------------------------------------------------------------------------

    def engine_config(self, *, is_client: bool, server_name: str | None = None) -> EngineConfig:
        """The QUIC configuration for one connection (servers get the current certificate and
        the stateless reset secret: only listeners answer with resets)."""
        if is_client:
            return self.config.engine_config(is_client=True, server_name=server_name)
        return self.config.engine_config(
            is_client=False,
            certificate=self.cert_manager.current(),
            stateless_reset_secret=self.reset_secret,
        )

    async def get_nursery(self, preferred: trio.Nursery | None = None) -> trio.Nursery:
        """A nursery for background tasks: the swarm's, else one of our own (system task)."""
        if preferred is not None:
            return preferred
        if self._nursery is not None:
            return self._nursery
        async with self._own_nursery_lock:
            if self._nursery is None:
                ready = trio.Event()

                async def own_nursery() -> None:
                    with trio.CancelScope() as scope:
                        self._own_scope = scope
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            ready.set()
                            await trio.sleep_forever()

                trio.lowlevel.spawn_system_task(own_nursery)
                await ready.wait()
        assert self._nursery is not None
        return self._nursery

    async def _client_endpoint(self, family: int) -> Endpoint:
        """The host's listening endpoint of ``family`` when it listens (so the peer observes
        our listen port), else one shared client UDP endpoint per address family."""
        listening = shared_endpoint.dial_endpoint(self.local_peer, family)
        if listening is not None:
            return listening
        async with self._client_lock:
            endpoint = self._client_endpoints.get(family)
            if endpoint is None:
                host = "::" if family == socket.AF_INET6 else "0.0.0.0"
                try:
                    endpoint = await Endpoint.bind(
                        host, 0, EndpointOptions(engine=self.engine_name)
                    )
                except (OSError, ListenError) as error:
                    raise Unreachable(f"cannot open a UDP socket: {error}") from error
                nursery = await self.get_nursery()
                nursery.start_soon(endpoint.run)
                self._client_endpoints[family] = endpoint
                self.watch_endpoint(endpoint, nursery)
            return endpoint

    def watch_endpoint(self, endpoint: Endpoint, nursery: trio.Nursery) -> None:
        """Metrics on: export ``endpoint``'s counters, and sample connections in ``nursery``."""
        if self.metrics is not None:
            self.metrics.watch_endpoint(endpoint)
            if not self._sampling:
                self._sampling = True
                nursery.start_soon(self.metrics.sample_forever, self.connections)

    # --- listening ----------------------------------------------------------------------------

    def create_listener(self, handler_function: THandler) -> WebTransportListener:
        """A listener that hands authenticated connections to ``handler_function``."""
        if self._closed:
            raise ListenError("transport is closed")
        listener = WebTransportListener(self, handler_function)
        self._listeners.append(listener)
        return listener

    # --- dialing ------------------------------------------------------------------------------

    async def dial(self, maddr: Multiaddr) -> WebTransportConnection:
        """Dial a WebTransport multiaddr; returns an authenticated, muxed connection."""
        if self._closed:
            raise DialError("transport is closed")
        self.check_private_network(DialError)
        try:
            addr = wt_multiaddr.parse_webtransport_multiaddr(maddr)
        except WebTransportError as error:
            raise DialError(f"invalid WebTransport multiaddr {maddr}: {error}") from error
        started = time.monotonic()
        try:
            session = await dial_session(
                self._client_endpoint,
                addr,
                private_key=self.private_key,
                config=self.config,
                engine_config=self.engine_config(is_client=True, server_name=addr.sni),
                engine=self.engine_name,
            )
        except DialError as error:
            if self.metrics is not None:
                self.metrics.handshake_failed("outbound", error)
            raise
        conn = session.conn
        self._connections = {c for c in self._connections if not c.is_closed}
        self._connections.add(conn)
        logger.debug("dialed %s in %.1f ms", maddr, (time.monotonic() - started) * 1e3)
        return conn

    # --- diagnostics (serve --stats, SIGUSR1) ------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        """Every UDP endpoint: the listeners', then the client ones."""
        listening = [lst.endpoint for lst in self._listeners if lst.endpoint is not None]
        return listening + list(self._client_endpoints.values())

    def connections(self) -> list[WebTransportConnection]:
        """The open authenticated connections, accepted then dialed."""
        accepted = [conn for lst in self._listeners for conn in lst.connections]
        return accepted + [conn for conn in self._connections if not conn.is_closed]

    # --- shutdown -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Close listeners, connections and the client endpoints."""
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            await listener.close()
        async with trio.open_nursery() as nursery:
            for conn in list(self._connections):
                nursery.start_soon(conn.close)
        endpoints = list(self._client_endpoints.values())
        self._client_endpoints.clear()
        for endpoint in endpoints:
            endpoint.close()
        if self._own_scope is not None:
            # Our own system task (no swarm gave us a nursery) ends with us, once the client
            # endpoints have sent their close frames; otherwise each transport leaks one task.
            with trio.move_on_after(1.0):
                for endpoint in endpoints:
                    await endpoint.wait_closed()
            self._own_scope.cancel()


def default_engine() -> str:
    """The package's default engine if installed, else the first installed one."""
    installed = available_engines()
    if DEFAULT_ENGINE in installed or not installed:
        return DEFAULT_ENGINE  # an uninstalled default fails later with a clear EngineError
    return installed[0]
