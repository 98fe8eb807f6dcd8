"""``py-libp2p-webtransport serve --demo`` as a person would run it after ``pip install``: a wheel
built from this tree, installed in a fresh venv with no Node on PATH, the CLI in a subprocess,
the page opened in headless Chromium and clicked through (demo/e2e.mjs): chat, fetch, Helia fetch
and listing, upload, the DHT lookup, video. See ``test_demo_from_an_installed_wheel`` for what is
real and what is shortened. The video on both engines and browsers: test_video.py,
test_video_firefox.py. Quick ones from the checkout: the DHT section, and the page without the DHT.

The screenshot is kept at artifacts/demo.png (git-ignored) and its path printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.demo_harness import check_dht, check_video, click_through, require_demo_video
from support.usecases_harness import DEMO_DIR, require_demo_bundle

from py_libp2p_webtransport.cli.demo import DEMO_DIRECTORY

pytestmark = pytest.mark.browser
BROWSER = "chromium"
ROOT = DEMO_DIR.parent
ARTIFACTS = ROOT / "artifacts"
SERVE = ["serve", "--demo", "--ephemeral"]  # --ephemeral: never the user's persistent identity
FROM_CHECKOUT = [sys.executable, "-m", "py_libp2p_webtransport.cli", *SERVE]  # serves demo/


async def test_demo_finds_the_node_through_its_dht(tmp_path: Path) -> None:
    """``serve --demo`` runs the DHT and provides its content: the page's DHT section (kad-dht
    on the page's one node) finds the node as provider and the node itself, over the network."""
    require_demo_bundle("dist/demo.js")
    shot = tmp_path / "demo.png"
    printed, out = await click_through(FROM_CHECKOUT, cwd=ROOT, sections="dht", screenshot=shot)
    check_dht(printed, out)
    print(f"demo DHT section: {out['dht']['text']}")


async def test_demo_without_the_dht_says_so_and_works(tmp_path: Path) -> None:
    """``serve --demo --no-dht``: the page still connects and chats; its DHT section says why
    there is nothing to look up, and no lookup runs."""
    require_demo_bundle("dist/demo.js")
    serve = [*FROM_CHECKOUT, "--no-dht"]
    shot = tmp_path / "demo.png"
    printed, out = await click_through(serve, cwd=ROOT, sections="chat", screenshot=shot)
    assert printed["no"].startswith("DHT (--no-dht)"), printed
    assert "python node got: hello from the browser test" in out["chat"]
    assert "the node runs no DHT (it was started with --no-dht)" in out["dht"]["text"], out["dht"]
    assert out["dht"]["ok"] is None and out["dht"]["found"] is None, out["dht"]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the package installed from a wheel built from this tree; its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    # The pure-Python wheel: the same build_py (and demo page build) as every wheel, without
    # the minute Cython takes. REQUIRE_DEMO: a wheel without the page fails the build.
    env = dict(os.environ, PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS="1")
    env["PY_LIBP2P_WEBTRANSPORT_REQUIRE_DEMO"] = "1"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    pip_wheel += ["--no-build-isolation", "-w", str(work), str(ROOT)]
    subprocess.run(pip_wheel, env=env, check=True, timeout=300)
    (wheel,) = work.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for page_file in ("demo.html", "dist/demo.js", "dist/video.webm"):
        assert f"py_libp2p_webtransport/demo_page/{page_file}" in names, names
    venv = work / "venv"
    # A venv without its own pip (ensurepip costs seconds): this pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
    install += ["--quiet", "--no-index", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, timeout=120)
    # The dependencies come from this test venv through a .pth (a path entry only: the
    # editable install's own .pth there is not processed, so the package can only come from
    # the wheel). Installing them from the registry is what pip always does; not the point here.
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", where], capture_output=True, text=True, check=True
    ).stdout.strip()
    Path(purelib, "test-venv-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    yield venv / "bin"
    shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
async def test_demo_from_an_installed_wheel(installed_wheel: Path, tmp_path: Path) -> None:
    """Done-when of issue 15 item 6, in the quickest honest form CI can run: a wheel built from
    this tree by pip (pure-Python, so no Cython minute; the page built from the pinned npm
    packages by setup.py as for every wheel), installed by pip into a fresh venv, ``serve
    --demo`` started from there with a PATH holding only that venv (no Node), outside the
    checkout. The page is the one inside the installed package."""
    require_demo_bundle()
    require_demo_video()
    env = dict(os.environ, PATH=str(installed_wheel))
    env.pop("PYTHONPATH", None)
    assert shutil.which("node", path=env["PATH"]) is None
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo.png"
    shot.unlink(missing_ok=True)
    serve = [str(installed_wheel / "py-libp2p-webtransport"), *SERVE]
    printed, out = await click_through(serve, cwd=tmp_path, env=env, screenshot=shot)
    page = Path(printed["page"].removeprefix("from "))
    assert page.parent.name == "py_libp2p_webtransport" and page.name == "demo_page", page
    assert page.is_relative_to(installed_wheel.parent), page
    assert "me: hello from the browser test" in out["chat"]
    assert "python node got: hello from the browser test" in out["chat"]
    assert out["chatStats"].startswith("1 sent, 1 received"), out["chatStats"]
    assert out["fetch"]["verified"] == "true", out["fetch"]
    assert out["fetchProgress"][0] == out["fetchProgress"][1] == 10 * 1024 * 1024
    assert out["helia"]["verified"] == "true", (out["helia"], out["logs"][-30:])
    assert out["helia"]["progress"][0] == out["helia"]["progress"][1] == 10 * 1024 * 1024
    assert out["helia"]["names"] == sorted({name.split("/")[0] for name in DEMO_DIRECTORY})
    assert out["upload"]["verified"] == "true", (out["upload"], out["logs"][-30:])
    assert out["upload"]["progress"][0] == out["upload"]["progress"][1] == 10 * 1024 * 1024
    check_dht(printed, out)
    check_video(out)
    assert shot.stat().st_size > 0
    print(f"demo screenshot: {shot.relative_to(ROOT)}")
    for name in ("fetch", "helia", "upload", "dht", "video"):
        print(f"demo {name}: {out[name]['text']}")
