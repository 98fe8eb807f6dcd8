"""Identify (``/ipfs/id/1.0.0``) with a correct observed address on WebTransport connections.

py-libp2p 0.8.1's identify handler turns ``stream.get_remote_address()`` into
``/ip4|ip6/<host>/tcp/<port>`` whatever the transport, so a browser that asks who it is seen as
gets a TCP address for its UDP WebTransport session. This handler answers the same message,
built by py-libp2p itself, with the observed address taken from the connection instead
(``/ip4/<host>/udp/<port>/quic-v1/webtransport``). Streams of other transports go to the stock
handler unchanged. Install it with :func:`install_identify` after ``new_host``.
"""

from __future__ import annotations

import logging

from libp2p.abc import IHost, INetStream
from libp2p.custom_types import StreamHandlerFn, TProtocol
from libp2p.identity.identify import identify as _stock
from libp2p.network.stream.exceptions import StreamClosed, StreamReset
from libp2p.utils import varint
from multiaddr import Multiaddr

from ..conn import WebTransportConnection
from ..quic_conn import QuicConnection

logger = logging.getLogger(__name__)

IDENTIFY_PROTOCOL = TProtocol(_stock.ID)
"""``/ipfs/id/1.0.0``."""


def observed_address(stream: INetStream) -> Multiaddr | None:
    """The peer's address as this host sees it, for a stream on one of our connections.

    None for streams of other transports (the stock handler knows those).
    """
    conn = stream.muxed_conn
    if not isinstance(conn, WebTransportConnection | QuicConnection):
        return None
    addrs = conn.get_transport_addresses()
    return addrs[0] if addrs else None


def identify_handler_for(host: IHost, use_varint_format: bool = True) -> StreamHandlerFn:
    """py-libp2p's identify handler, with the observed address fixed for WebTransport."""
    stock = _stock.identify_handler_for(host, use_varint_format=use_varint_format)

    async def handle_identify(stream: INetStream) -> None:
        observed = observed_address(stream)
        if observed is None:
            await stock(stream)
            return
        # The message itself (listen addresses, protocols, signed peer record) is py-libp2p's.
        message = _stock._mk_identify_protobuf(host, observed).SerializeToString()
        if use_varint_format:
            message = varint.encode_uvarint(len(message)) + message
        try:
            await stream.write(message)
        except (StreamClosed, StreamReset):
            logger.debug("identify: the peer went away before our answer")
        except Exception:
            logger.debug("identify: answering failed", exc_info=True)
            await _reset_quietly(stream)
            return
        try:
            await stream.close()
        except Exception:  # the peer may have reset in the meantime; nothing left to do
            logger.debug("identify: close failed", exc_info=True)

    return handle_identify


def install_identify(host: IHost) -> None:
    """Replace the host's identify handler with :func:`identify_handler_for`."""
    host.set_stream_handler(IDENTIFY_PROTOCOL, identify_handler_for(host))


async def _reset_quietly(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception:
        logger.debug("identify: reset failed", exc_info=True)
