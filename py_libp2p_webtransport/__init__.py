"""py-libp2p-webtransport: a fast QUIC/WebTransport transport for py-libp2p."""

from __future__ import annotations

from ._compat import NO_EXTENSIONS

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS"]


def __getattr__(name: str) -> object:
    # Lazy, so that importing the package does not load every twin.
    if name == "IMPLEMENTATION":
        from . import _wire

        # "cython" when the facade loaded the compiled twin, else "python".
        return _wire.IMPLEMENTATION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
