"""Build the Cython twins from csrc/ unless PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS is set.

Metadata lives in pyproject.toml; this file only adds ext_modules (the multidict pattern).
"""

import os
import sys

from setuptools import Extension, setup

NO_EXTENSIONS = (
    bool(os.environ.get("PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS"))
    or sys.implementation.name != "cpython"
)
DEBUG_BUILD = bool(os.environ.get("PY_LIBP2P_WEBTRANSPORT_DEBUG_BUILD"))
ANNOTATE = bool(os.environ.get("PY_LIBP2P_WEBTRANSPORT_CYTHON_ANNOTATE"))

# Every compiled twin: module name -> source. The module name decides where the .so lands.
COMPILED_TWINS = {
    "py_libp2p_webtransport._wire_c": "csrc/_wire_c.pyx",
    "py_libp2p_webtransport._mux_c": "csrc/_mux_c.pyx",
    "py_libp2p_webtransport._udp_c": "csrc/_udp_c.pyx",
}


def _extensions() -> list[Extension]:
    from Cython.Build import cythonize

    cflags = ["-O0", "-g3", "-UNDEBUG"] if DEBUG_BUILD else ["-O2"]
    exts = [
        Extension(name, [src], extra_compile_args=cflags)
        for name, src in COMPILED_TWINS.items()
        if os.path.exists(src)
    ]
    return cythonize(
        exts,
        include_path=["csrc"],
        annotate=ANNOTATE,
        compiler_directives={
            "language_level": "3",
            "embedsignature": True,
            "freethreading_compatible": True,
        },
    )


if NO_EXTENSIONS:
    print("*** py-libp2p-webtransport: pure Python build ***")
    setup()
else:
    print("*** py-libp2p-webtransport: accelerated (Cython) build ***")
    setup(ext_modules=_extensions())
