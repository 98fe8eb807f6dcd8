"""Build the Cython twins from csrc/ unless PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS is set, and the
demo page into the package (``serve --demo`` after ``pip install``).

Metadata lives in pyproject.toml; this file only adds ext_modules (the multidict pattern) and
the page step of build_py.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

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


# The demo page (demo/: the pinned npm packages of its package-lock.json) is built with Node when a
# wheel is built and lands in the package as py_libp2p_webtransport/demo_page/. Without npm the
# wheel is built without it (NOT_BUILT.json says from where, so `serve --demo` can name the exact
# command), unless REQUIRE_DEMO is set (wheels/build-local.sh): then that is an error.
# PREBUILT_DEMO names a page folder built beforehand with npm (demo/ after `npm run build`), copied
# as is: for builders without Node, such as cibuildwheel's containers (wheels/cibuildwheel.toml).
REQUIRE_DEMO = bool(os.environ.get("PY_LIBP2P_WEBTRANSPORT_REQUIRE_DEMO"))
PREBUILT_DEMO = os.environ.get("PY_LIBP2P_WEBTRANSPORT_PREBUILT_DEMO")
DEMO = Path(__file__).resolve().parent / "demo"
PAGE_FILES = ("demo.html", "dist/demo.js", "dist/video.webm")


def _build_demo_page(page: Path) -> None:
    shutil.rmtree(page, ignore_errors=True)
    page.mkdir(parents=True)
    if PREBUILT_DEMO:
        _copy_page(Path(PREBUILT_DEMO), page)
        return
    npm = shutil.which("npm")
    if npm is None or not (DEMO / "package-lock.json").is_file():
        why = "npm not found" if npm is None else "no demo/ sources"
        if REQUIRE_DEMO:
            raise SystemExit(f"error: cannot build the demo page: {why}")
        print(f"*** py-libp2p-webtransport: {why}: the package has no demo page ***")
        record = {"source": str(DEMO.parent), "reason": why}
        (page / "NOT_BUILT.json").write_text(json.dumps(record) + "\n")
        return
    # npm ci only when needed (a fresh tree, or a lockfile newer than the install): it downloads.
    modules = DEMO / "node_modules"
    lock = DEMO / "package-lock.json"
    if not modules.is_dir() or lock.stat().st_mtime > modules.stat().st_mtime:
        ci = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(ci, cwd=DEMO, check=True)
    subprocess.run([npm, "run", "--silent", "build"], cwd=DEMO, check=True)
    _copy_page(DEMO, page)


def _copy_page(built: Path, page: Path) -> None:
    for name in PAGE_FILES:
        source = built / name
        if not source.is_file():
            if REQUIRE_DEMO or name != "dist/video.webm":
                raise SystemExit(f"error: no {name} in the built demo page {built}")
            continue  # no ffmpeg: build.mjs said so; the page runs without the video
        (page / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, page / name)


class BuildPyWithDemo(build_py):
    """build_py, plus the demo page in the built package (not for editable installs, which
    serve the checkout's demo/ directly)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            _build_demo_page(Path(self.build_lib) / "py_libp2p_webtransport" / "demo_page")


if NO_EXTENSIONS:
    print("*** py-libp2p-webtransport: pure Python build ***")
    setup(cmdclass={"build_py": BuildPyWithDemo})
else:
    print("*** py-libp2p-webtransport: accelerated (Cython) build ***")
    setup(ext_modules=_extensions(), cmdclass={"build_py": BuildPyWithDemo})
