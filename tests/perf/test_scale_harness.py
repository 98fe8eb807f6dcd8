"""``benchmarks/scale.py`` does what it claims with real processes over loopback: a small run of
each kind of server holds every connection, reports every figure and writes its JSON schema.
Nothing here asserts a duration or a rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCALE = ROOT / "benchmarks" / "scale.py"


@pytest.mark.slow
def test_a_small_run_holds_every_connection_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    cases = "ours-qh3,ours-aioquic-transport,ours-qh3-quic,ours-aioquic-quic-transport,libp2p-tcp"
    args = ["--conns", "30", "--burst", "10", "--idle-seconds", "1", "--pings", "20"]
    done = subprocess.run(
        [sys.executable, str(SCALE), *args, "--cases", cases, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["schema"] == "py-libp2p-webtransport/scale/1"
    assert set(report["cases"]) == set(cases.split(","))
    for case, result in report["cases"].items():
        assert result["status"] == "ok", (case, result["reason"])
        figures, raw = result["metrics"], result["raw"]
        assert raw["connections"] == 30 and figures["failed_dials"] == 0, case
        assert figures["closed_while_idle"] == 0, raw["closed_while_idle_reasons"]
        assert figures["server_cpu_ms_per_conn"] > 0 and figures["accepted_per_s"] > 0
        assert figures["server_kib_per_conn"] is not None
        outcomes = figures["burst_connected"] + figures["burst_refused"] + figures["burst_hung"]
        assert outcomes == 10, raw["burst_outcomes"]
        has_host = not case.endswith("-transport")
        assert (figures["ping_median_ms"] is not None) == has_host, case
        # During the burst a process of its own pinged the node (hosts only: they answer pings).
        assert (raw["burst_pings"] >= 1) == has_host, case
        assert (figures["burst_ping_max_ms"] is not None) == has_host, case
        assert raw["burst_ping_failures"] == 0, case
    phases = report["cases"]["ours-qh3"]["metrics"]
    assert all(phases[f"phase_{p}_ms"] > 0 for p in ("quic", "connect", "noise"))
    # The Markdown table went to stdout, one row per case.
    rows = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("| ours") or line.startswith("| libp2p")
    ]
    assert len(rows) == 5


def test_unknown_case_is_an_argument_error() -> None:
    done = subprocess.run(
        [sys.executable, str(SCALE), "--cases", "ours-qh3,nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown cases ['nope']" in done.stderr
