"""The ``py-libp2p-webtransport`` command line.

* ``main``: the argument parser, ``serve`` and the entry point.
* ``perf``: ``perf MULTIADDR``, the ``/perf/1.0.0`` client (also ``python -m …cli.perf``).
* ``demo``: ``serve --demo``, the browser demo page and its services.

Nothing is imported until ``main()`` runs, so ``python -m py_libp2p_webtransport.cli.perf`` loads
only what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``py-libp2p-webtransport`` script."""
    from .main import main as run

    return run(argv)
