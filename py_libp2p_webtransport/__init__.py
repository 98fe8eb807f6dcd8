"""py-libp2p-webtransport: a fast QUIC/WebTransport transport for py-libp2p.

The public names load lazily, so ``import py_libp2p_webtransport`` (or importing one of the sans-IO
layers) does not load libp2p and trio::

    from py_libp2p_webtransport import WebTransportTransport, WebTransportConfig, DialError
    from py_libp2p_webtransport import new_host  # a host with TCP + WebTransport (host.py)

Every error class of ``errors`` is available here too. The map of the package is
``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._compat import NO_EXTENSIONS

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ loads them on first use
    from .config import WebTransportConfig  # noqa: F401
    from .errors import *  # noqa: F403
    from .host import addrs_factory, new_host, transports  # noqa: F401
    from .transport import WebTransportTransport  # noqa: F401

# public name -> module that defines it (errors: every name in errors.__all__, added below)
_LAZY = {
    "WebTransportTransport": ".transport",
    "QuicTransport": ".quic_transport",
    "WebTransportConfig": ".config",
    "new_host": ".host",
    "transports": ".host",
    "addrs_factory": ".host",
}
_ERRORS = (
    "AddressError BufferLimitExceeded CerthashMismatch ContentError DialError DialTimeout "
    "EngineError FlowControlError FramingError HandshakeError InvalidCertificate InvalidCerthash "
    "InvalidPeerCertificate "
    "InvalidRetryToken ListenError LocalProtocolError MalformedPacket MessageError "
    "MissingCerthash NeedMoreData PeerIdMismatch PerfError ProtocolError RemoteProtocolError "
    "SessionRejected SettingsError StreamEnded StreamIdError StreamLimitReached Unreachable "
    "WebTransportError"
).split()
_LAZY.update(dict.fromkeys(_ERRORS, ".errors"))

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS", *sorted(_LAZY)]  # noqa: F405


def __getattr__(name: str) -> object:
    if name == "IMPLEMENTATION":
        from . import _wire

        # "cython" when the facade loaded the compiled twin, else "python".
        return _wire.IMPLEMENTATION
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
