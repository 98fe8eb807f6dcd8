"""Where ``serve --demo`` finds its built page, and what to tell the user when there is none.

A page folder holds ``demo.html``, ``dist/demo.js`` and (when ffmpeg was there at build time)
``dist/video.webm``. Three places, in order:

- ``--demo-dir`` when given;
- the page that ships inside the package (``py_libp2p_webtransport/demo_page/``), which
  ``setup.py``'s ``build_py`` builds from the pinned npm packages of ``demo/`` when a wheel is
  built; a wheel built without Node has none and carries ``demo_page/NOT_BUILT.json`` instead,
  naming the source tree it was built from;
- the ``demo/`` folder of a source checkout (an editable install), built there with npm.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

PACKAGED_PAGE = Path(__file__).resolve().parents[1] / "demo_page"
CHECKOUT_DEMO = Path(__file__).resolve().parents[2] / "demo"
NOT_BUILT = "NOT_BUILT.json"
BUILD = "npm ci && npm run build"
NEEDS = "(Node 20+, and ffmpeg for the video)"


def page_is_built(folder: Path) -> bool:
    return (folder / "demo.html").is_file() and (folder / "dist" / "demo.js").is_file()


def find_page(demo_dir: str | None) -> Path:
    """The page folder to serve (it may be unbuilt: ask ``missing_page`` before serving it)."""
    if demo_dir is not None:
        return Path(demo_dir)
    if page_is_built(PACKAGED_PAGE) or not (CHECKOUT_DEMO / "package.json").is_file():
        return PACKAGED_PAGE
    return CHECKOUT_DEMO


def _build_in(demo: Path) -> str:
    return f"`cd {shlex.quote(str(demo.resolve()))} && {BUILD}`"


def missing_page(folder: Path) -> str | None:
    """None when ``folder`` holds a built page, else what to run to get one."""
    if page_is_built(folder):
        return None
    if (folder / "package.json").is_file():  # a source checkout's demo/, not built yet
        return f"the demo page is not built: run {_build_in(folder)} {NEEDS}"
    source = _source_of_unbuilt_wheel(folder)
    if source is not None:
        demo = source / "demo"
        return (
            f"this installation has no demo page: it was built from {source} without Node. "
            f"Run {_build_in(demo)} {NEEDS} and start with `py-libp2p-webtransport serve --demo "
            f"--demo-dir {shlex.quote(str(demo))}`, or, with Node on PATH, reinstall from there "
            f"(`pip install {shlex.quote(str(source))}` builds the page into the package)"
        )
    return (
        f"no demo page in {folder} (this installation was built without Node): in a source "
        f"checkout of py-libp2p-webtransport run `cd demo && {BUILD}` {NEEDS}, then start with "
        "`py-libp2p-webtransport serve --demo --demo-dir <checkout>/demo`, or reinstall from the "
        "checkout with Node on PATH (`pip install <checkout>` builds the page into the package)"
    )


def _source_of_unbuilt_wheel(folder: Path) -> Path | None:
    """The source tree a wheel without the page was built from, if it still has ``demo/``."""
    try:
        record = json.loads((folder / NOT_BUILT).read_text())
        source = Path(record["source"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if (source / "demo" / "package.json").is_file() else None
