"""``python -m py_libp2p_webtransport.cli``: the same as the ``py-libp2p-webtransport`` command."""

from __future__ import annotations

from .main import main

raise SystemExit(main())
