"""The benchmark harness (benchmarks/peer.py, benchmarks/compare.py) does what it claims: real
processes over loopback produce every figure, failures and missing transports are reported.
Nothing here asserts a duration."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]


def _load_compare() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_compare", ROOT / "benchmarks" / "compare.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compare"] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


compare = _load_compare()


async def test_peer_processes_produce_every_workload_over_tcp() -> None:
    peer = str(ROOT / "benchmarks" / "peer.py")
    with trio.fail_after(90):
        server = await trio.lowlevel.open_process(
            [sys.executable, peer, "serve", "--transport", "tcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            assert server.stdout is not None and server.stdin is not None
            line = b""
            while not line.endswith(b"\n"):
                line += await server.stdout.receive_some(4096)
            hello = json.loads(line)
            done = await trio.run_process(
                [
                    sys.executable,
                    peer,
                    "client",
                    "--transport",
                    "tcp",
                    "--addr",
                    hello["addr"],
                    "--server-pid",
                    str(hello["pid"]),
                    "--size",
                    "300001",
                    "--pings",
                    "20",
                    "--dials",
                    "3",
                    "--streams",
                    "20",
                    "--idle-conns",
                    "2",
                    "--idle-seconds",
                    "0.5",
                    "--timeout",
                    "30",
                ],
                capture_stdout=True,
                cwd=ROOT,
            )
        finally:
            if server.stdin is not None:
                await server.stdin.aclose()
            await server.wait()
    out = json.loads(done.stdout)
    w = out["workloads"]
    assert set(w) == {"upload", "download", "ping", "dial", "streams", "idle"}
    assert not [name for name, fig in w.items() if "error" in fig]
    assert w["upload"]["perf"]["upload_bytes"] == 300001
    assert w["download"]["perf"]["download_bytes"] == 300001
    assert (w["ping"]["count"], w["dial"]["count"], w["streams"]["count"]) == (20, 3, 20)
    assert w["idle"]["connections"] == 2
    assert w["dial"]["failures"] == 0
    for name in ("upload", "download"):
        # Both processes are python + py-libp2p: tens of MB at least, and /proc was readable.
        assert w[name]["client_peak_rss_mb"] > 20 and w[name]["server_peak_rss_mb"] > 20
    assert server.returncode == 0  # it stopped because its stdin closed


def _run(
    status: str, upload: float | None, ping: float | None = None, run: int = 1
) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    if upload is not None:
        workloads["upload"] = {"mb_per_s": upload}
    if ping is not None:
        workloads["ping"] = {"median_ms": ping}
    else:
        workloads["ping"] = {"error": "TooSlowError: "}
    return {
        "run": run,
        "status": status,
        "error": None if status == "ok" else "killed",
        "client": {"workloads": workloads} if status == "ok" else None,
    }


def test_summarise_medians_ratios_and_statuses() -> None:
    results: dict[str, Any] = {
        "baseline": "ours-qh3",
        "cases": {
            "ours-qh3": {
                "status": "pending",
                "runs": [_run("ok", 100, 0.4), _run("ok", 300, 0.2), _run("ok", 200, 0.3)],
            },
            "libp2p-tcp": {
                "status": "pending",
                "runs": [_run("ok", 40, 0.8), _run("failed", None)],
            },
            "libp2p-quic": {"status": "pending", "runs": [_run("ok", 2, None)]},
            "hung": {"status": "pending", "runs": [_run("failed", None)]},
            "ours-aioquic": {"status": "unavailable", "runs": []},
        },
    }
    compare.summarise(results)
    cases = results["cases"]
    assert cases["ours-qh3"]["status"] == "ok"
    assert cases["ours-qh3"]["medians"]["upload_mb_s"] == 200
    assert cases["ours-qh3"]["ratios"]["upload_mb_s"] == 1
    assert cases["libp2p-tcp"]["status"] == "partial"  # one of two runs failed
    assert cases["libp2p-tcp"]["ratios"]["upload_mb_s"] == pytest.approx(0.2)
    assert cases["libp2p-tcp"]["ratios"]["ping_median_ms"] == pytest.approx(0.8 / 0.3)
    assert cases["libp2p-quic"]["status"] == "partial"  # a workload failed
    assert cases["libp2p-quic"]["medians"]["ping_median_ms"] is None
    assert cases["hung"]["status"] == "failed"
    assert cases["hung"]["notes"] == ["run 1 failed: killed"]
    assert cases["ours-aioquic"]["status"] == "unavailable"
    assert set(cases["ours-aioquic"]["ratios"]) == set(compare.METRICS)
    table = compare.markdown(
        results
        | {
            "config": {
                "runs": 3,
                "size": 2**20,
                "pings": 1,
                "dials": 1,
                "streams": 1,
                "idle_conns": 1,
                "idle_seconds": 1.0,
            },
            "machine": {"platform": "p", "cpus": 2, "python": "3"},
        }
    )
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(cases)  # header + every case, none dropped
    assert any(r.startswith("| ours-aioquic | unavailable |") for r in rows)


def test_a_silent_server_is_reported_not_awaited() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.PIPE
    )
    try:
        with pytest.raises(compare.RunFailed, match="printed nothing"):
            compare._read_line(proc, 0.5)
    finally:
        compare._kill(proc)
    assert proc.returncode is not None


def test_unknown_case_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        compare.parse_args(["--cases", "ours-qh3,warp-drive"])
    assert "warp-drive" in capsys.readouterr().err


def test_failed_dials_are_counted_in_the_notes() -> None:
    run = _run("ok", 10, 0.5)
    run["client"]["workloads"]["dial"] = {"count": 47, "failures": 3, "median_ms": 20.0}
    again = _run("ok", 10, 0.5)
    again["client"]["workloads"]["dial"] = {"count": 50, "failures": 0, "median_ms": 22.0}
    results: dict[str, Any] = {
        "baseline": "x",
        "cases": {"x": {"status": "pending", "runs": [run, again | {"run": 2}]}},
    }
    compare.summarise(results)
    case = results["cases"]["x"]
    assert case["notes"] == ["3 of 100 dials failed"]
    assert case["status"] == "partial"
    assert case["medians"]["dial_median_ms"] == 21.0
