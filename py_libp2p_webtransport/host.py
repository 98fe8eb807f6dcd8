"""One call to a working py-libp2p host: ``new_host(key_pair=..., listen_addrs=..., announce=...)``.

py-libp2p's own ``new_host`` gives its built-in WebTransport transport for a ``/webtransport``
listen address, drops TCP as soon as ``transports=[...]`` is passed, and knows nothing of
certhashes or of our identify fix. This module wires what a deployed node needs:

- TCP (py-libp2p's), our WebTransport transport and our QUIC transport (``/quic-v1``), the
  two sharing one UDP socket per listen address (``shared_endpoint.py``);
- the identify handler that reports a WebTransport peer's real observed address
  (``apps/identify.py``);
- an address factory that puts the current certhash pair on every WebTransport address the host
  reports: listen, announced (``announce=``), the user's ``addrs_factory`` and observed ones;
- rotation announced: on each certificate rotation the signed peer record is re-issued and
  identify is pushed to every connected peer.

For a host built by hand, ``transports()`` and ``addrs_factory()`` are the pieces::

    wt, tcp = transports(key_pair)
    host = libp2p.new_host(key_pair=key_pair, transports=[wt, tcp],
                           addrs_factory=addrs_factory(wt, announce=[...]))
    install_identify(host)
    announce_rotations(host, wt)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from libp2p import new_host as _libp2p_new_host
from libp2p.abc import IHost, ITransport
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.identity.identify_push.identify_push import push_identify_to_peers
from libp2p.peer.peerstore import issue_and_cache_local_record
from libp2p.transport.tcp.tcp import TCP
from multiaddr import Multiaddr

from .addresses import AddrsFactory, compose_addrs_factory
from .apps.identify import install_identify
from .config import WebTransportConfig
from .quic_transport import QuicTransport
from .task_lookup import index_task_parents
from .transport import WebTransportTransport

__all__ = [
    "DEFAULT_LISTEN_ADDRS",
    "RotationAnnouncer",
    "addrs_factory",
    "announce_rotations",
    "new_host",
    "transports",
    "webtransport_of",
]

logger = logging.getLogger(__name__)

DEFAULT_LISTEN_ADDRS = (
    "/ip4/127.0.0.1/udp/0/quic-v1/webtransport",
    "/ip4/127.0.0.1/udp/0/quic-v1",  # the same UDP socket as the WebTransport address
    "/ip4/127.0.0.1/tcp/0",
)
"""Loopback only: listening on a public interface is always an explicit choice."""


def transports(
    key_pair: KeyPair,
    config: WebTransportConfig | None = None,
    *,
    tcp: bool = True,
    quic: bool = True,
) -> list[ITransport]:
    """``[WebTransportTransport, QuicTransport, TCP]`` (QUIC only when ``quic``, TCP only when
    ``tcp``) for ``transports=`` of a host."""
    out: list[ITransport] = [WebTransportTransport(key_pair.private_key, config)]
    if quic:
        out.append(QuicTransport(key_pair.private_key, config))
    if tcp:
        out.append(TCP())
    return out


def addrs_factory(
    transport: WebTransportTransport,
    *,
    announce: Sequence[Multiaddr] | None = None,
    then: AddrsFactory | None = None,
) -> AddrsFactory:
    """The host's address factory: ``announce`` (if given) replaces the listen and observed
    addresses, ``then`` (the user's factory) runs next, and every WebTransport address gets the
    transport's current certhash pair last."""
    return compose_addrs_factory(
        transport.cert_manager.advertised_certhashes, announce=announce, then=then
    )


class RotationAnnouncer:
    """Tells the world when the certhashes change: a new signed peer record, identify push.

    The certificate manager calls ``on_rotation`` synchronously from whichever call noticed the
    new bucket; the push runs in the swarm's background nursery.
    """

    def __init__(self, host: IHost, transport: WebTransportTransport) -> None:
        self.host = host
        self.transport = transport
        self.rotations = 0
        """Rotations announced so far (for diagnostics and tests)."""
        transport.cert_manager.subscribe(self.on_rotation)

    def on_rotation(self) -> None:
        """Re-issue the signed peer record with the new addresses; push identify to peers."""
        self.rotations += 1
        issue_and_cache_local_record(self.host)
        nursery = getattr(self.host.get_network(), "background_nursery", None)
        if nursery is None:  # the host is not running: no peer to tell
            return
        logger.info("certificates rotated: pushing identify to connected peers")
        try:
            nursery.start_soon(push_identify_to_peers, self.host)
        except RuntimeError:  # the swarm is shutting down (its nursery is closed)
            logger.debug("identify push after rotation skipped: the host is stopping")

    def close(self) -> None:
        """Stop announcing (the transport's certificate manager forgets us)."""
        self.transport.cert_manager.unsubscribe(self.on_rotation)


def announce_rotations(host: IHost, transport: WebTransportTransport) -> RotationAnnouncer:
    """Announce each certificate rotation of ``transport`` on ``host`` (``RotationAnnouncer``)."""
    announcer = RotationAnnouncer(host, transport)
    host.webtransport_announcer = announcer  # type: ignore[attr-defined]  # kept with the host
    return announcer


def webtransport_of(host: IHost) -> WebTransportTransport:
    """The ``WebTransportTransport`` of a host (``ValueError`` when it has none)."""
    manager = getattr(host.get_network(), "transport_manager", None)
    for transport in manager.get_transports() if manager is not None else ():
        if isinstance(transport, WebTransportTransport):
            return transport
    raise ValueError("this host has no WebTransportTransport")


_OURS = ("transports", "announce_addrs", "enable_webtransport")


def new_host(
    key_pair: KeyPair | None = None,
    listen_addrs: Sequence[Multiaddr] | None = None,
    *,
    announce: Sequence[Multiaddr] | None = None,
    addrs_factory: AddrsFactory | None = None,
    config: WebTransportConfig | None = None,
    tcp: bool = True,
    quic: bool = True,
    extra_transports: Sequence[ITransport] = (),
    index_tasks: bool = True,
    **host_options: Any,
) -> IHost:
    """A py-libp2p host with TCP, our WebTransport and our QUIC transports, ready for browsers
    and libp2p QUIC peers.

    Run it as any py-libp2p host: ``async with host.run(listen_addrs=...)`` with the same
    ``listen_addrs`` (checked here: each needs a transport of this host). ``announce`` replaces the
    advertised addresses (a public IP or ``/dns4/...`` name behind NAT); WebTransport ones get
    the current certhashes, kept current across rotations. ``addrs_factory`` is py-libp2p's
    (go's) factory, applied before the certhashes. ``config`` configures WebTransport;
    ``host_options`` go to ``libp2p.new_host`` (``transports``, ``announce_addrs`` and
    ``enable_webtransport`` are this function's to set).

    ``quic`` adds our ``QuicTransport`` (``/quic-v1``, on the WebTransport socket of the same
    address). The host's ``WebTransportTransport`` is ``webtransport_of(host)``.

    ``index_tasks`` installs ``task_lookup.index_task_parents()`` (process-wide): py-libp2p's
    swarm then finds a new task's parent in O(1), where it walked every open connection's task
    on each accept. ``False`` leaves py-libp2p as it is (for comparison; it does not undo an
    earlier install).
    """
    clash = sorted(set(_OURS) & set(host_options))
    if clash:
        raise TypeError(
            f"new_host() sets {', '.join(clash)} itself: use announce= for announced addresses "
            "and extra_transports= for more transports"
        )
    if index_tasks:
        index_task_parents()
    key_pair = key_pair or create_new_key_pair()
    wt, *others = transports(key_pair, config, tcp=tcp, quic=quic)
    assert isinstance(wt, WebTransportTransport)
    all_transports = [wt, *others, *extra_transports]
    if listen_addrs:
        listen = [Multiaddr(str(a)) for a in listen_addrs]
    else:  # the defaults of the transports this host has (tcp=False, quic=False drop theirs)
        defaults = [Multiaddr(a) for a in DEFAULT_LISTEN_ADDRS]
        listen = [a for a in defaults if any(t.can_listen(a) for t in all_transports)]
    for addr in listen:
        if not any(t.can_listen(addr) for t in all_transports):
            raise ValueError(f"no transport of this host can listen on {addr}")
    host = _libp2p_new_host(
        key_pair=key_pair,
        transports=all_transports,
        listen_addrs=listen,
        addrs_factory=compose_addrs_factory(
            wt.cert_manager.advertised_certhashes, announce=announce, then=addrs_factory
        ),
        **host_options,
    )
    install_identify(host)
    announce_rotations(host, wt)
    return host
