"""``WebTransportTransport``: py-libp2p's ``ITransport`` for ``/quic-v1/webtransport``.

Register it explicitly (py-libp2p has no transport registry)::

    kp = create_new_key_pair()
    host = new_host(key_pair=kp, transports=[WebTransportTransport(kp.private_key)],
                    listen_addrs=[Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")])

``listen_order()`` is below the QUIC transport's, so py-libp2p's QUIC transport (whose address
check also matches ``/quic-v1/webtransport``) never claims our addresses in the same host.

The transport holds the certificates and the metrics; what it shares with ``QuicTransport``
(configuration, engine choice, client endpoints, nursery, the open connections, shutdown) is
``transport_base.TransportBase``. The dial itself (QUIC, certhash pin,
CONNECT, Noise) is ``handshake.dial_session``. Every failure raises a typed
:class:`~py_libp2p_webtransport.errors.DialError` within ``connect_timeout`` +
``handshake_timeout``.
"""

from __future__ import annotations

import logging
import time

from libp2p.abc import ITransport
from libp2p.crypto.keys import PrivateKey
from libp2p.custom_types import THandler
from multiaddr import Multiaddr

from . import multiaddr as wt_multiaddr
from .certs import CertManager
from .config import WebTransportConfig
from .conn import WebTransportConnection
from .engine.base import EngineConfig
from .errors import DialError, ListenError, WebTransportError
from .handshake import NOISE_PATH, authority, dial_session
from .listener import WebTransportListener
from .transport_base import TransportBase, default_engine

__all__ = ["NOISE_PATH", "WebTransportTransport", "default_engine"]

logger = logging.getLogger(__name__)

# The former private helper, for code that still builds a session by hand.
_authority = authority


class WebTransportTransport(TransportBase[WebTransportConnection], ITransport):
    """libp2p transport over WebTransport (HTTP/3 over QUIC) with certhash-pinned certs."""

    provides_native_muxing: bool = True

    def __init__(self, private_key: PrivateKey, config: WebTransportConfig | None = None) -> None:
        super().__init__(private_key, config)
        self.cert_manager: CertManager = self.config.cert_manager or CertManager(
            private_key, clock=self.config.clock
        )
        self._listeners: list[WebTransportListener] = []
        if self.metrics is not None:
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
                self.metrics.handshake_failed("webtransport", "outbound", error)
            raise
        conn = session.conn
        self._connections.add(conn)  # until it closes
        logger.debug("dialed %s in %.1f ms", maddr, (time.monotonic() - started) * 1e3)
        return conn
