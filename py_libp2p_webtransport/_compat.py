"""The one switch between compiled and pure-Python twins.

``PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS=1`` makes ``setup.py`` build no extension and makes every
facade (``_wire``, ``_mux``, ``_udp``) import its ``_py`` twin. Non-CPython interpreters always use
the pure twins.
"""

from __future__ import annotations

import os
import sys

NO_EXTENSIONS: bool = (
    bool(os.environ.get("PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS"))
    or sys.implementation.name != "cpython"
)

# Set by wheel tests: a test fails unless the compiled twins really loaded.
REQUIRE_EXTENSIONS: bool = bool(os.environ.get("PY_LIBP2P_WEBTRANSPORT_REQUIRE_EXTENSIONS"))
