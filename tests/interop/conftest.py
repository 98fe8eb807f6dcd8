"""Fixtures of the interop tests: independent WebTransport clients run as subprocesses.

The clients live in their own virtualenvs (Python >= 3.12), made by
``scripts/setup-interop-clients.sh`` under ``.venv-interop/`` (or ``$INTEROP_VENV_DIR``). A test
whose client venv is missing is skipped with a message naming the missing piece, except when the
``CI`` environment variable is set: then it fails, because CI must have run the setup script.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

REPO = Path(__file__).resolve().parents[2]
CLIENTS_DIR = Path(__file__).resolve().parent / "clients"
SETUP_SCRIPT = "scripts/setup-interop-clients.sh"
# Seconds the harness waits beyond a client's own --timeout (its close grace and watchdog) before
# it kills the process and reports a hang.
HARNESS_SLACK = 8.0


@dataclass(frozen=True)
class ClientSpec:
    """One independent client: its venv, distribution and program."""

    name: str
    distribution: str
    program: str

    def venv_python(self) -> Path:
        base = Path(os.environ.get("INTEROP_VENV_DIR", REPO / ".venv-interop"))
        return base / self.name / "bin" / "python"


PYWEBTRANSPORT = ClientSpec("pywebtransport", "pywebtransport", "pywebtransport_client.py")
WEBTRANSPORT_PY = ClientSpec("webtransport-py", "webtransport-py", "webtransport_py_client.py")
CLIENTS = {spec.name: spec for spec in (PYWEBTRANSPORT, WEBTRANSPORT_PY)}


def _missing(spec: ClientSpec) -> str | None:
    """Why ``spec`` cannot run here, or None."""
    python = spec.venv_python()
    if not python.exists():
        return f"no venv for {spec.name} ({python} is missing); run {SETUP_SCRIPT}"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m; print(m.version({spec.distribution!r}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return f"{spec.distribution} is not installed in {python.parent.parent}; run {SETUP_SCRIPT}"
    return None


@dataclass
class ClientRun:
    """The outcome of one client process: its JSON result plus what the harness saw."""

    result: dict[str, Any]
    returncode: int
    stderr: str

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def describe(self) -> str:
        """A compact account for assertion messages."""
        tail = self.stderr.strip().splitlines()[-15:]
        return json.dumps(self.result, sort_keys=True) + (
            "\nstderr:\n" + "\n".join(tail) if tail else ""
        )


class ClientRunner:
    """Runs one independent client program against a URL and parses its JSON line."""

    def __init__(self, spec: ClientSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(
        self,
        url: str,
        *,
        echo_bidi: tuple[int, ...] = (),
        accept_bidi: int = 0,
        expect_status: int = 200,
        timeout: float = 10.0,
    ) -> ClientRun:
        args = [str(self.spec.venv_python()), str(CLIENTS_DIR / self.spec.program), "--url", url]
        for n in echo_bidi:
            args += ["--echo-bidi", str(n)]
        if accept_bidi:
            args += ["--accept-bidi", str(accept_bidi)]
        args += ["--expect-status", str(expect_status), "--timeout", str(timeout)]
        with trio.move_on_after(timeout + HARNESS_SLACK) as scope:
            proc = await trio.run_process(
                args, capture_stdout=True, capture_stderr=True, check=False
            )
        if scope.cancelled_caught:
            pytest.fail(
                f"{self.name} client did not exit within {timeout + HARNESS_SLACK} s: killed"
            )
        stdout = proc.stdout.decode("utf-8", "replace")
        stderr = proc.stderr.decode("utf-8", "replace")
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if len(lines) != 1:
            pytest.fail(
                f"{self.name} client printed {len(lines)} JSON lines (exit {proc.returncode}); "
                f"stdout:\n{stdout[-2000:]}\nstderr:\n{stderr[-2000:]}"
            )
        run = ClientRun(json.loads(lines[0]), proc.returncode, stderr)
        # The exit status and `ok` must agree: a client that says ok but failed is a harness bug.
        assert (run.returncode == 0) == bool(run["ok"]), run.describe()
        return run


def _client_fixture(spec: ClientSpec) -> ClientRunner:
    reason = _missing(spec)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"interop client missing in CI: {reason}")
        pytest.skip(reason)
    return ClientRunner(spec)


@pytest.fixture(scope="session")
def pywebtransport_client() -> ClientRunner:
    """pywebtransport 0.21.1 (draft-15/16: SETTINGS 0x2c7cf000, ``:protocol`` webtransport-h3)."""
    return _client_fixture(PYWEBTRANSPORT)


@pytest.fixture(scope="session")
def webtransport_py_client() -> ClientRunner:
    """webtransport-py 2026.1.0.dev0 (needs SETTINGS 0x14e9cd29 from the server, like Safari)."""
    return _client_fixture(WEBTRANSPORT_PY)


@pytest.fixture(params=sorted(CLIENTS))
def any_client(request: pytest.FixtureRequest) -> ClientRunner:
    """Each independent client in turn."""
    return _client_fixture(CLIENTS[str(request.param)])
