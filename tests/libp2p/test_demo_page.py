"""Where ``serve --demo`` finds its page (cli/demo_page.py), and setup.py's page step when a
wheel is built without Node: the package then says which command builds the page, and where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from py_libp2p_webtransport.cli import demo_page
from py_libp2p_webtransport.cli.demo_page import NOT_BUILT, find_page, missing_page

ROOT = Path(__file__).resolve().parents[2]


def _built_page(folder: Path) -> Path:
    (folder / "dist").mkdir(parents=True)
    (folder / "demo.html").write_text("<!doctype html>")
    (folder / "dist" / "demo.js").write_text("")
    return folder


def test_the_packaged_page_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = _built_page(tmp_path / "pkg" / "demo_page")
    checkout = _built_page(tmp_path / "checkout" / "demo")
    (checkout / "package.json").write_text("{}")
    monkeypatch.setattr(demo_page, "PACKAGED_PAGE", packaged)
    monkeypatch.setattr(demo_page, "CHECKOUT_DEMO", checkout)
    assert find_page(None) == packaged
    assert find_page(str(tmp_path / "mine")) == tmp_path / "mine"  # --demo-dir wins
    # An editable install: nothing in the package, the checkout's demo/ is served.
    monkeypatch.setattr(demo_page, "PACKAGED_PAGE", tmp_path / "nothing")
    assert find_page(None) == checkout
    assert missing_page(checkout) is None


def test_an_unbuilt_wheel_names_the_command_in_its_source_tree(tmp_path: Path) -> None:
    source = tmp_path / "my checkout"  # a space: the command must quote it
    (source / "demo").mkdir(parents=True)
    (source / "demo" / "package.json").write_text("{}")
    page = tmp_path / "demo_page"
    page.mkdir()
    (page / NOT_BUILT).write_text(json.dumps({"source": str(source), "reason": "npm not found"}))
    message = missing_page(page)
    assert message is not None
    assert f"`cd '{source}/demo' && npm ci && npm run build`" in message
    assert f"--demo-dir '{source}/demo'" in message
    # The source tree is gone (a wheel built from an unpacked sdist): the generic instructions.
    (source / "demo" / "package.json").unlink()
    message = missing_page(page)
    assert message is not None
    assert "`cd demo && npm ci && npm run build`" in message
    assert "--demo-dir <checkout>/demo" in message


def _build_py(build_lib: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """setup.py's build_py with no npm on PATH (an empty PATH), pure Python."""
    environ = dict(os.environ, PATH=str(build_lib.parent / "empty"), **env)
    environ["PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS"] = "1"
    (build_lib.parent / "empty").mkdir(exist_ok=True)
    cmd = [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build_lib)]
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)


def test_a_build_without_npm_has_no_page_and_says_how_to_build_it(tmp_path: Path) -> None:
    done = _build_py(tmp_path / "lib")
    assert done.returncode == 0, done.stderr
    assert "npm not found: the package has no demo page" in done.stdout
    page = tmp_path / "lib" / "py_libp2p_webtransport" / "demo_page"
    assert not (page / "dist" / "demo.js").exists()
    message = missing_page(page)
    assert message is not None
    demo = ROOT / "demo"
    assert f"`cd {demo} && npm ci && npm run build`" in message, message


def test_a_build_that_requires_the_page_fails_without_npm(tmp_path: Path) -> None:
    done = _build_py(tmp_path / "lib", PY_LIBP2P_WEBTRANSPORT_REQUIRE_DEMO="1")
    assert done.returncode != 0
    assert "cannot build the demo page: npm not found" in done.stderr


def test_a_build_without_npm_copies_a_prebuilt_page(tmp_path: Path) -> None:
    built = _built_page(tmp_path / "built")
    (built / "dist" / "demo.js").write_text("// the bundle")
    (built / "dist" / "video.webm").write_bytes(b"webm")
    done = _build_py(tmp_path / "lib", PY_LIBP2P_WEBTRANSPORT_PREBUILT_DEMO=str(built))
    assert done.returncode == 0, done.stderr
    page = tmp_path / "lib" / "py_libp2p_webtransport" / "demo_page"
    assert missing_page(page) is None
    assert (page / "dist" / "demo.js").read_text() == "// the bundle"
    assert (page / "dist" / "video.webm").read_bytes() == b"webm"
    # A prebuilt folder that lacks the bundle is an error, never a wheel without a page.
    (built / "dist" / "demo.js").unlink()
    done = _build_py(tmp_path / "lib", PY_LIBP2P_WEBTRANSPORT_PREBUILT_DEMO=str(built))
    assert done.returncode != 0
    assert "no dist/demo.js in the built demo page" in done.stderr


async def test_serve_demo_from_an_unbuilt_wheel_names_the_command(tmp_path: Path) -> None:
    (tmp_path / "src" / "demo").mkdir(parents=True)
    (tmp_path / "src" / "demo" / "package.json").write_text("{}")
    page = tmp_path / "demo_page"
    page.mkdir()
    (page / NOT_BUILT).write_text(json.dumps({"source": str(tmp_path / "src")}))
    cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", "--demo"]
    cmd += ["--demo-dir", str(page)]
    with trio.fail_after(60):
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    assert proc.returncode == 2
    error = proc.stderr.decode()
    assert f"`cd {tmp_path}/src/demo && npm ci && npm run build`" in error, error
