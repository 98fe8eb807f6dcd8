"""The UDP endpoint: one socket, its QUIC connections, and the pump that drives them.

* ``pump``: ``Endpoint`` (bind, the pump loop, transmit, shutdown) and its connections.
* ``options``: ``EndpointOptions``, the endpoint's settings, checked once.
* ``quic_header``: QUIC packet headers, parsed far enough to route a datagram.
* ``retry``: stateless Retry packets and address-validation tokens.
* ``deadlines``: the timer heap the pump re-arms once per turn.

The helpers are sans-IO; only ``pump`` uses trio and sockets. Names are loaded lazily, so
importing a helper does not load the pump (and trio).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .options import EndpointOptions
    from .pump import ConnectionHandler, Endpoint, EndpointConnection, EndpointStats

__all__ = [
    "ConnectionHandler",
    "Endpoint",
    "EndpointConnection",
    "EndpointOptions",
    "EndpointStats",
]


def __getattr__(name: str) -> object:
    if name == "EndpointOptions":
        from .options import EndpointOptions

        return EndpointOptions
    if name in __all__:
        from . import pump

        return getattr(pump, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
