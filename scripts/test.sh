#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the suite needs, builds the
# Cython twins, checks lint and types, and runs the whole suite twice: with the compiled twins and
# with the pure-Python ones (PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS=1).
#
#   bash scripts/test.sh            # everything (what CI runs)
#   bash scripts/test.sh -k wire    # extra arguments go to both pytest runs
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "Python environment ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
# The build tools live in the venv so the twins can be rebuilt in place after an edit.
"$PY" -m pip install --quiet "setuptools>=77" "Cython>=3.1,<4" wheel
# Editable install with the test extras (compiles the twins into the source tree, which the
# tests import); build_ext --inplace then only recompiles what changed since.
"$PY" -m pip install --quiet --no-build-isolation -e '.[test]'
"$PY" setup.py --quiet build_ext --inplace

step "Browsers and the browser test client (tests/browser)"
bash scripts/setup-browsers.sh

if [ -f scripts/setup-interop-clients.sh ]; then
    step "Independent WebTransport clients (interop tests)"
    bash scripts/setup-interop-clients.sh
fi

step "Lint and types"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"

run_pytest() {
    # pytest exits 5 when nothing was collected: that is a failure here, never a pass.
    local status=0
    "$PY" -m pytest "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "pytest collected no tests: failing" >&2
    fi
    return "$status"
}

step "Tests with the compiled (Cython) twins"
PY_LIBP2P_WEBTRANSPORT_REQUIRE_EXTENSIONS=1 run_pytest "$@"

# The pure pass skips the `slow` tests: the unit and fuzz tests already run both twins in the
# pass above (twin fixtures), and the long transfers would only repeat themselves at a third
# of the speed. Everything else (session, endpoint, libp2p, browsers) runs again on the pure twins.
step "Tests with the pure-Python twins"
PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS=1 run_pytest --no-c-extensions -m "not slow" "$@"
