"""The floor modules added with the stall breaker and the shared QUIC configuration load no trio,
no libp2p and nothing of the glue (the rule of ``tests/test_layering.py``, for these modules)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PACKAGE = "py_libp2p_webtransport"
GLUE = ["errors", "conn", "stream", "stream_state", "transport", "listener", "config", "endpoint"]


@pytest.mark.parametrize("module", ["session.stall", "engine.quic_config"])
def test_new_floor_module_loads_no_trio_libp2p_or_glue(module: str) -> None:
    probe = "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
    probe += "print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe, f"{PACKAGE}.{module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    forbidden = ["trio", "libp2p", *(f"{PACKAGE}.{name}" for name in GLUE)]
    assert (
        sorted(n for n in loaded if any(n == f or n.startswith(f + ".") for f in forbidden)) == []
    )
