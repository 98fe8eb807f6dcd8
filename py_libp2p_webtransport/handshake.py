"""The upgrade step of a WebTransport connection: from a QUIC connection to an authenticated peer.

``dial_session``: QUIC handshake on a client endpoint, the server certificate pinned to the
dialed certhashes, extended CONNECT, then Noise XX on the first bidirectional stream (the
server's certhash list must contain every dialed certhash; the peer id must match ``/p2p/``).
``accept_session``: the session layer answers the CONNECT; Noise runs on the first client-opened
stream with our certhashes. Both close the connection on failure and raise a typed
:class:`~py_libp2p_webtransport.errors.DialError`; swarms, listeners, bindings and certificate
rotation belong to transport.py and listener.py.

The trio drivers of the sans-IO ``NoiseHandshake`` (noise.py) live here too.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import trio
from libp2p.crypto.keys import PrivateKey, PublicKey
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import MuxedConnUnavailable

from .certs import verify_server_certificate
from .config import WebTransportConfig
from .conn import WebTransportConnection
from .constants import WELL_KNOWN_PATH
from .engine.base import EngineConfig
from .errors import DialError, DialTimeout, HandshakeError, MissingCerthash, Unreachable
from .multiaddr import WebTransportAddress
from .noise import DEFAULT_HANDSHAKE_TIMEOUT, NoiseHandshake, NoiseResult
from .stream import WebTransportStream

if TYPE_CHECKING:
    from .endpoint import Endpoint

__all__ = [
    "HANDSHAKE_STREAM_LINGER",
    "NOISE_PATH",
    "AuthenticatedSession",
    "EndpointFor",
    "HandshakeStream",
    "accept_session",
    "authority",
    "dial_session",
    "drive_handshake",
    "handshake_inbound",
    "handshake_outbound",
    "open_session",
    "retire_handshake_stream",
]

logger = logging.getLogger(__name__)

#: The HTTP path of the libp2p WebTransport endpoint, with its mandatory query.
NOISE_PATH = f"{WELL_KNOWN_PATH}?type=noise"
#: How long the server keeps the handshake stream open for the dialer's FIN after message 3.
HANDSHAKE_STREAM_LINGER = 5.0

EndpointFor = Callable[[int], Awaitable["Endpoint"]]
"""The client endpoint to dial from, per address family (``socket.AF_INET`` or ``AF_INET6``)."""


@dataclass(frozen=True, slots=True)
class AuthenticatedSession:
    """A WebTransport session whose peer Noise authenticated; ``conn`` is established."""

    conn: WebTransportConnection
    peer_id: ID
    public_key: PublicKey


def authority(host: str, port: int) -> str:
    """``host:port`` for the CONNECT's ``:authority`` (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- dialing -----------------------------------------------------------------------------------


async def dial_session(
    endpoint_for: EndpointFor,
    addr: WebTransportAddress,
    *,
    private_key: PrivateKey,
    config: WebTransportConfig,
    engine_config: EngineConfig,
    engine: str | None = None,
) -> AuthenticatedSession:
    """Dial ``addr`` and authenticate the server.

    ``engine_config`` is a client configuration (``server_name`` from ``addr.sni``); ``engine``
    None uses the endpoint's. The QUIC handshake and the CONNECT take at most
    ``config.connect_timeout``, Noise at most ``config.handshake_timeout``.
    """
    if not addr.certhashes:
        raise MissingCerthash(f"cannot dial {authority(addr.host, addr.port)} without a /certhash")
    local_peer = ID.from_pubkey(private_key.get_public_key())
    conn, stream = await open_session(
        endpoint_for,
        addr,
        config=config,
        engine_config=engine_config,
        engine=engine,
        local_peer=local_peer,
    )
    peer_id, public_key = await _authenticate_server(conn, stream, addr, private_key, config)
    conn.mark_established(peer_id, public_key)
    return AuthenticatedSession(conn, peer_id, public_key)


async def open_session(
    endpoint_for: EndpointFor,
    addr: WebTransportAddress,
    *,
    config: WebTransportConfig,
    engine_config: EngineConfig,
    local_peer: ID,
    engine: str | None = None,
    early_stream: bool = True,
) -> tuple[WebTransportConnection, WebTransportStream | None]:
    """The first half of a dial: QUIC, the certhash pin and the CONNECT, within
    ``config.connect_timeout``; the connection is not authenticated yet.

    With ``early_stream`` the Noise stream opens right after the CONNECT (libp2p WebTransport
    spec; the server holds it until it accepts the session), so Noise message 1 leaves with the
    CONNECT and saves a round trip. Returns ``(conn, stream)``: with a stream, the CONNECT's
    answer may still be on its way (``dial_session`` checks it after Noise); with None
    (``early_stream`` False, or the answer came before a stream could open) the session is
    established.
    """
    conn: WebTransportConnection | None = None
    stream: WebTransportStream | None = None
    target = authority(addr.host, addr.port)
    try:
        with trio.fail_after(config.connect_timeout):
            sockaddr, family = await resolve(addr)
            endpoint = await endpoint_for(family)
            ep_conn = endpoint.connect(sockaddr, engine_config, engine=engine)
            conn = WebTransportConnection(
                ep_conn, is_initiator=True, config=config, local_peer=local_peer
            )
            await conn.quic_connected.wait()
            if conn.is_closed:
                raise Unreachable(f"QUIC handshake with {target} failed: {conn.close_reason}")
            verify_server_certificate(
                conn.peer_certificate_der() or b"", addr.certhashes, config.clock()
            )
            conn.request_session(target, NOISE_PATH)
            # The CONNECT itself waits for the server's SETTINGS (qh3 servers send them with
            # the handshake, aioquic ones one round trip later): retry each pump turn.
            while early_stream and stream is None and not conn.session_ready.is_set():
                stream = _try_open_stream(conn)
                if stream is None:
                    await conn.wait_turn()
            if stream is None:
                await _session_ready(conn, target)  # raises: rejected or closed
    except trio.TooSlowError:
        if conn is not None:
            await conn.close()
        raise DialTimeout(
            f"no WebTransport session with {target} within {config.connect_timeout} s"
        ) from None
    except BaseException:
        if conn is not None:
            await conn.close()
        raise
    return conn, stream


async def _authenticate_server(
    conn: WebTransportConnection,
    stream: WebTransportStream | None,
    addr: WebTransportAddress,
    private_key: PrivateKey,
    config: WebTransportConfig,
) -> tuple[ID, PublicKey]:
    """The second half of a dial: Noise as initiator, then the CONNECT's answer."""
    target = authority(addr.host, addr.port)
    try:
        with trio.fail_after(config.handshake_timeout):
            if stream is None:
                stream = conn.open_stream_nowait()
            try:
                result = await handshake_outbound(
                    stream,
                    private_key,
                    dialed_certhashes=addr.certhashes,
                    expected_peer=addr.peer_id,
                    timeout=config.handshake_timeout,
                )
            except Exception:
                if conn.session_rejected is not None:  # the real reason Noise failed
                    raise conn.session_rejected from None
                raise
            await stream.close()  # FIN; the server's FIN retires the stream
            # The server answers the CONNECT before it reads Noise: normally already here.
            await _session_ready(conn, target)
    except trio.TooSlowError:
        await conn.close()
        raise DialTimeout(f"Noise handshake with {target} timed out") from None
    except DialError:
        await conn.close()
        raise
    except BaseException as error:
        await conn.close()
        if isinstance(error, Exception):
            raise HandshakeError(f"Noise handshake with {target} failed: {error}") from error
        raise
    return result.remote_peer_id, result.remote_public_key


def _try_open_stream(conn: WebTransportConnection) -> WebTransportStream | None:
    """A new stream, or None while the session layer refuses streams (CONNECT not yet sent)."""
    try:
        return conn.open_stream_nowait()
    except MuxedConnUnavailable:
        return None


async def _session_ready(conn: WebTransportConnection, target: str) -> None:
    """Wait for the answer to the CONNECT; a refusal or a lost connection raises."""
    await conn.session_ready.wait()
    if conn.session_rejected is not None:
        raise conn.session_rejected
    if conn.is_closed:
        raise Unreachable(f"session with {target} failed: {conn.close_reason}")


async def resolve(addr: WebTransportAddress) -> tuple[tuple[Any, ...], int]:
    """``(socket address, address family)`` of ``addr``; DNS names are resolved (first answer)."""
    host, port = addr.host, addr.port
    if not addr.is_dns:
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


# --- accepting ---------------------------------------------------------------------------------


async def accept_session(
    conn: WebTransportConnection,
    *,
    private_key: PrivateKey,
    certhashes: Iterable[bytes],
    timeout: float,
    linger_nursery: trio.Nursery,
) -> AuthenticatedSession | None:
    """Authenticate the client of a new server connection, all within ``timeout`` seconds.

    Returns None when the connection ended before a session was asked for (a half-open
    connection dropped, a client that left: nobody to blame). Otherwise the session is
    established, or the connection is closed and ``HandshakeError`` raised. The handshake
    stream then lingers in ``linger_nursery`` (see ``retire_handshake_stream``).
    """
    try:
        with trio.fail_after(timeout):
            await conn.session_ready.wait()
            if conn.is_closed:
                return None
            stream = await conn.accept_wt_stream()
            result = await handshake_inbound(
                stream, private_key, certhashes=certhashes, timeout=timeout
            )
            # FIN only: js-libp2p fails its dial on a STOP_SENDING here. The client's own FIN
            # then retires the stream.
            await stream.close()
    except trio.TooSlowError:
        await conn.close()
        raise HandshakeError(f"the handshake did not finish within {timeout} s") from None
    except Exception as error:
        await conn.close()
        if isinstance(error, DialError):
            raise
        raise HandshakeError(f"the handshake failed: {error}") from error
    conn.mark_established(result.remote_peer_id, result.remote_public_key)
    if not conn.is_closed:
        linger_nursery.start_soon(retire_handshake_stream, stream)
    return AuthenticatedSession(conn, result.remote_peer_id, result.remote_public_key)


async def retire_handshake_stream(stream: WebTransportStream) -> None:
    """Wait for the dialer to finish the Noise stream, then stop reading it.

    js-libp2p closes its side right after sending Noise message 3; a STOP_SENDING that reaches
    the browser before it has done so makes its close() throw and the whole dial fail. So read to
    the dialer's FIN (bounded) and only send STOP_SENDING to a dialer that never finishes.
    """
    try:
        with trio.move_on_after(HANDSHAKE_STREAM_LINGER):
            while await stream.read(65536):
                pass  # nothing may follow message 3; discard
    except EOFError:  # MuxedStreamEOF: the dialer's FIN, the normal end
        pass
    except Exception:  # a reset or a closed connection ends the linger just as well
        logger.debug("handshake stream ended abnormally", exc_info=True)
    await stream.close_read()


# --- Noise over a stream -----------------------------------------------------------------------


class HandshakeStream(Protocol):
    """The stream the handshake runs on (an ``IMuxedStream`` fits)."""

    async def read(self, n: int) -> bytes:
        """Read up to ``n`` bytes; ``b""`` at end of stream."""
        ...

    async def write(self, data: bytes) -> None:
        """Write all of ``data``."""
        ...


async def drive_handshake(
    stream: HandshakeStream,
    handshake: NoiseHandshake,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> NoiseResult:
    """Run ``handshake`` over ``stream``, never reading past its last message.

    A handshake that takes longer than ``timeout`` seconds (``None``: no limit) raises
    ``DialTimeout`` on the initiator and ``HandshakeError`` on the responder. A failing stream
    (reset, closed, broken) becomes a ``HandshakeError`` whose ``__cause__`` is the stream's error,
    so a dialer only ever sees ``DialError`` subclasses.
    """
    try:
        with trio.fail_after(math.inf if timeout is None else timeout):
            while True:
                out = handshake.data_to_send()
                if out:
                    await stream.write(out)
                if handshake.is_complete:
                    return handshake.result
                try:
                    data = await stream.read(handshake.bytes_needed)
                except EOFError:  # MuxedStreamEOF / StreamEOF: the peer sent FIN early
                    data = b""
                if not data:
                    raise HandshakeError("stream closed during the Noise handshake")
                handshake.receive_data(data)
    except trio.TooSlowError as exc:
        error = DialTimeout if handshake.is_initiator else HandshakeError
        raise error(f"the Noise handshake did not finish within {timeout} s") from exc
    except DialError:
        raise
    except Exception as exc:  # the stream failed under us
        raise HandshakeError(f"the handshake stream failed: {exc!r}") from exc


async def handshake_outbound(
    stream: HandshakeStream,
    private_key: PrivateKey,
    *,
    dialed_certhashes: Iterable[bytes] = (),
    expected_peer: ID | None = None,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> NoiseResult:
    """Client side: authenticate the server and check its certhash list; returns the server."""
    handshake = NoiseHandshake.initiator(
        private_key, dialed_certhashes=dialed_certhashes, expected_peer=expected_peer
    )
    return await drive_handshake(stream, handshake, timeout)


async def handshake_inbound(
    stream: HandshakeStream,
    private_key: PrivateKey,
    *,
    certhashes: Iterable[bytes] = (),
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> NoiseResult:
    """Server side: list ``certhashes`` in message 2; returns the authenticated client."""
    handshake = NoiseHandshake.responder(private_key, certhashes=certhashes)
    return await drive_handshake(stream, handshake, timeout)
