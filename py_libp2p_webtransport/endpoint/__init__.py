"""The UDP endpoint: one socket, its QUIC connections, and the pump that drives them.

* ``pump``: ``Endpoint``, the trio part: bind, the pump loop, transmit, shutdown; it applies
  admission's verdicts.
* ``admission``: what becomes of a datagram the pump did not route at once (route, accept,
  Retry, drop), with the routing table, per-source Initial rates and the half-open bound.
* ``connection``: ``EndpointConnection`` (one connection's record), the ``ConnectionHandler``
  its owner implements, and ``EndpointStats``.
* ``registry``: the live connections with every index kept on them (routes, half-open slots,
  timers, dirty set), and how they end (engine failure, handshake timeout, endpoint close).
* ``options``: ``EndpointOptions``, the endpoint's settings, checked once.
* ``udp_socket``: opening the socket; batched sends that keep order when the kernel pushes back.
* ``quic_header``: QUIC packet headers, parsed far enough to route a datagram.
* ``retry``: stateless Retry packets and address-validation tokens.
* ``deadlines``: the timer heap the pump re-arms once per turn.

Only ``pump`` uses trio; ``udp_socket`` and ``pump`` touch sockets; the rest is sans-IO. Names
are loaded lazily, so importing a helper does not load the pump (and trio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import ConnectionHandler, EndpointConnection, EndpointStats
    from .options import EndpointOptions
    from .pump import Endpoint

__all__ = [
    "ConnectionHandler",
    "Endpoint",
    "EndpointConnection",
    "EndpointOptions",
    "EndpointStats",
]

_HOMES = {
    "ConnectionHandler": "connection",
    "Endpoint": "pump",
    "EndpointConnection": "connection",
    "EndpointOptions": "options",
    "EndpointStats": "connection",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{home}", __name__), name)
