"""py-libp2p-webtransport: a fast QUIC/WebTransport transport for py-libp2p."""

from __future__ import annotations

from ._compat import NO_EXTENSIONS


def _detect_implementation() -> str:
    """Return ``"cython"`` when the compiled wire twin is the one the facade loaded."""
    from . import _wire

    return "cython" if _wire.IMPLEMENTATION == "cython" else "python"


IMPLEMENTATION: str = _detect_implementation()

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS"]
