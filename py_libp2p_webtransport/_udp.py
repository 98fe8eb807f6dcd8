"""Facade for the `_udp` twins: the only module the rest of the package imports.

Loads the compiled `_udp_c` unless PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS is set (or it is missing),
else the pure-Python reference `_udp_py`. Both export the same names and raise the same errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._compat import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._udp_py import *  # noqa: F403
    from ._udp_py import __all__  # noqa: F401
else:
    try:
        from ._udp_c import *  # noqa: F403
        from ._udp_c import __all__  # noqa: F401
    except ImportError:  # pragma: no cover  (no compiler and no wheel for this platform)
        from ._udp_py import *  # noqa: F403
        from ._udp_py import __all__  # noqa: F401
