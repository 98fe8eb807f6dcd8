"""``WebTransportTransport``: py-libp2p's ``ITransport`` for ``/quic-v1/webtransport``.

Register it explicitly (py-libp2p has no transport registry)::

    kp = create_new_key_pair()
    host = new_host(key_pair=kp, transports=[WebTransportTransport(kp.private_key)],
                    listen_addrs=[Multiaddr("/ip4/127.0.0.1/udp/0/quic-v1/webtransport")])

``listen_order()`` is below the QUIC transport's, so py-libp2p's QUIC transport (whose address
check also matches ``/quic-v1/webtransport``) never claims our addresses in the same host.

A dial: QUIC handshake on a shared client endpoint, the server certificate's hash must be one of
the dialed certhashes, extended CONNECT, then Noise XX on the first bidirectional stream (the
server's certhash list must contain every dialed certhash; the peer id must match ``/p2p/``).
Every failure raises a typed :class:`~py_libp2p_webtransport.errors.DialError` within
``connect_timeout`` + ``handshake_timeout``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence
from typing import Any

import trio
from libp2p.abc import ITransport
from libp2p.crypto.keys import PrivateKey, PublicKey
from libp2p.custom_types import THandler
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable
from multiaddr import Multiaddr

from . import multiaddr as wt_multiaddr
from . import noise
from .certs import CertManager, verify_server_certificate
from .config import WebTransportConfig
from .conn import WebTransportConnection
from .constants import WELL_KNOWN_PATH
from .endpoint import Endpoint
from .engine import DEFAULT_ENGINE, available_engines
from .engine.base import EngineConfig
from .errors import (
    DialError,
    DialTimeout,
    HandshakeError,
    ListenError,
    MissingCerthash,
    Unreachable,
    WebTransportError,
)
from .listener import WebTransportListener
from .stream import WebTransportStream

logger = logging.getLogger(__name__)

#: The HTTP path of the libp2p WebTransport endpoint, with its mandatory query.
NOISE_PATH = f"{WELL_KNOWN_PATH}?type=noise"


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
        self._nursery: trio.Nursery | None = None
        self._own_nursery_lock = trio.Lock()
        self._own_scope: trio.CancelScope | None = None  # our own system task, if we made one
        self._swarm: Any = None
        self._client_endpoints: dict[int, Endpoint] = {}
        self._client_lock = trio.Lock()
        self._listeners: list[WebTransportListener] = []
        self._connections: set[WebTransportConnection] = set()
        self._closed = False

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

    def _check_private_network(self, error: type[WebTransportError]) -> None:
        if getattr(self._swarm, "psk", None) is not None:
            raise error(
                "WebTransport cannot run in a private network (PSK): the swarm would wrap a "
                "natively multiplexed connection; use TCP or WebSocket transports for pnet"
            )

    # --- engines ------------------------------------------------------------------------------

    def engine_config(self, *, is_client: bool, server_name: str | None = None) -> EngineConfig:
        """The QUIC configuration for one connection (servers get the current certificate)."""
        certificate = None if is_client else self.cert_manager.current()
        return self.config.engine_config(
            is_client=is_client, server_name=server_name, certificate=certificate
        )

    async def _get_nursery(self, preferred: trio.Nursery | None = None) -> trio.Nursery:
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
        """One shared client UDP endpoint per address family."""
        async with self._client_lock:
            endpoint = self._client_endpoints.get(family)
            if endpoint is None:
                host = "::" if family == socket.AF_INET6 else "0.0.0.0"
                try:
                    endpoint = await Endpoint.bind(host, 0, engine=self.engine_name)
                except (OSError, ListenError) as error:
                    raise Unreachable(f"cannot open a UDP socket: {error}") from error
                nursery = await self._get_nursery()
                nursery.start_soon(endpoint.run)
                self._client_endpoints[family] = endpoint
            return endpoint

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
        self._check_private_network(DialError)
        try:
            addr = wt_multiaddr.parse_webtransport_multiaddr(maddr)
        except WebTransportError as error:
            raise DialError(f"invalid WebTransport multiaddr {maddr}: {error}") from error
        if not addr.certhashes:
            raise MissingCerthash(f"cannot dial {maddr} without a /certhash")
        expected_peer = addr.peer_id

        cfg = self.config
        started = time.monotonic()
        conn: WebTransportConnection | None = None
        try:
            with trio.fail_after(cfg.connect_timeout):
                sockaddr, family = await self._resolve(addr.host, addr.port, addr.is_dns)
                endpoint = await self._client_endpoint(family)
                engine_cfg = self.engine_config(is_client=True, server_name=addr.sni)
                ep_conn = endpoint.connect(sockaddr, engine_cfg, engine=self.engine_name)
                conn = WebTransportConnection(
                    ep_conn, is_initiator=True, config=cfg, local_peer=self.local_peer
                )
                await conn.quic_connected.wait()
                if conn.is_closed:
                    raise Unreachable(f"QUIC handshake with {maddr} failed: {conn.close_reason}")
                verify_server_certificate(
                    conn.peer_certificate_der() or b"", addr.certhashes, cfg.clock()
                )
                conn.request_session(_authority(addr.host, addr.port), NOISE_PATH)
                # Noise may start right after the CONNECT (libp2p WebTransport spec; the server
                # holds the stream until it accepts the session): its first message leaves
                # with the CONNECT, saving a round trip. The CONNECT itself waits for the
                # server's SETTINGS (qh3 servers send them with the handshake, aioquic ones
                # one round trip later).
                stream = self._early_stream(conn)
                while stream is None and not conn.session_ready.is_set():
                    await conn.wait_turn()
                    stream = self._early_stream(conn)
                if stream is None:
                    await self._session_ready(conn, maddr)  # raises: rejected or closed
        except trio.TooSlowError:
            if conn is not None:
                await conn.close()
            raise DialTimeout(
                f"no WebTransport session with {maddr} within {cfg.connect_timeout} s"
            ) from None
        except BaseException:
            if conn is not None:
                await conn.close()
            raise

        try:
            with trio.fail_after(cfg.handshake_timeout):
                if stream is None:
                    stream = conn.open_stream_nowait()
                try:
                    peer, public_key = await self._noise_initiator(
                        stream, expected_peer, addr.certhashes
                    )
                except Exception:
                    if conn.session_rejected is not None:  # the real reason Noise failed
                        raise conn.session_rejected from None
                    raise
                await stream.close()  # FIN; the server's FIN retires the stream
                # The server answers the CONNECT before it reads Noise: normally already here.
                await self._session_ready(conn, maddr)
        except trio.TooSlowError:
            await conn.close()
            raise DialTimeout(f"Noise handshake with {maddr} timed out") from None
        except DialError:
            await conn.close()
            raise
        except BaseException as error:
            await conn.close()
            if isinstance(error, Exception):
                raise HandshakeError(f"Noise handshake with {maddr} failed: {error}") from error
            raise
        conn.mark_established(peer, public_key)
        self._connections = {c for c in self._connections if not c.is_closed}
        self._connections.add(conn)
        logger.debug("dialed %s in %.1f ms", maddr, (time.monotonic() - started) * 1e3)
        return conn

    @staticmethod
    def _early_stream(conn: WebTransportConnection) -> WebTransportStream | None:
        """The Noise stream, opened right after the CONNECT; None if the CONNECT still waits
        for the server's SETTINGS (the session layer refuses streams before it is sent)."""
        try:
            return conn.open_stream_nowait()
        except MuxedConnUnavailable:
            return None

    @staticmethod
    async def _session_ready(conn: WebTransportConnection, maddr: Multiaddr) -> None:
        """Wait for the answer to the CONNECT; a refusal or a lost connection raises."""
        await conn.session_ready.wait()
        if conn.session_rejected is not None:
            raise conn.session_rejected
        if conn.is_closed:
            raise Unreachable(f"session with {maddr} failed: {conn.close_reason}")

    @staticmethod
    async def _resolve(host: str, port: int, is_dns: bool) -> tuple[tuple[Any, ...], int]:
        if not is_dns:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            return ((host, port), family)
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as error:
            raise Unreachable(f"cannot resolve {host}: {error}") from error
        if not infos:
            raise Unreachable(f"{host} has no address")
        family, _, _, _, sockaddr = infos[0]
        return (tuple(sockaddr), int(family))

    # --- Noise (the certhash extension is in noise.py) ----------------------------------------

    async def _noise_initiator(
        self, stream: WebTransportStream, expected_peer: ID | None, certhashes: Sequence[bytes]
    ) -> tuple[ID, PublicKey]:
        result = await noise.handshake_outbound(
            stream,
            self.private_key,
            dialed_certhashes=certhashes,
            expected_peer=expected_peer,
            timeout=self.config.handshake_timeout,
        )
        return result.remote_peer_id, result.remote_public_key

    async def _noise_responder(self, stream: WebTransportStream) -> tuple[ID, PublicKey]:
        result = await noise.handshake_inbound(
            stream,
            self.private_key,
            certhashes=self.cert_manager.noise_certhashes(),
            timeout=self.config.handshake_timeout,
        )
        return result.remote_peer_id, result.remote_public_key

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


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
