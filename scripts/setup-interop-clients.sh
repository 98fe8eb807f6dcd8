#!/usr/bin/env bash
# Create the virtualenvs of the independent WebTransport clients used by tests/interop (marker `interop`).
#
#   .venv-interop/pywebtransport/   pywebtransport==0.21.1            (draft-15/16, Rust core)
#   .venv-interop/webtransport-py/  webtransport-py==2026.1.0.dev0    (ngtcp2/nghttp3; Safari-like SETTINGS)
#
# Both need Python >= 3.12 (the project itself runs on >= 3.10), so each lives in its own venv and the tests run
# the client programs in tests/interop/clients/ as subprocesses. Idempotent: a venv that already holds the pinned
# version is left alone. Override the interpreter with INTEROP_PYTHON=/path/to/python3.12.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${INTEROP_VENV_DIR:-$ROOT/.venv-interop}"

# name  pip requirement  distribution name  version  extra pip flags
CLIENTS=(
  "pywebtransport|pywebtransport==0.21.1|pywebtransport|0.21.1|"
  "webtransport-py|webtransport-py==2026.1.0.dev0|webtransport-py|2026.1.0.dev0|--pre"
)

log() { printf 'setup-interop-clients: %s\n' "$*"; }

is_py312() {  # true when "$1" runs and is CPython >= 3.12
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidates=()
  [ -n "${INTEROP_PYTHON:-}" ] && candidates+=("$INTEROP_PYTHON")
  local name
  for name in python3.12 python3.13 python3.14 python3; do
    command -v "$name" >/dev/null 2>&1 && candidates+=("$(command -v "$name")")
  done
  if command -v pyenv >/dev/null 2>&1; then
    local v
    for v in 3.12 3.13 3.14; do
      local p
      p="$(pyenv which "python$v" 2>/dev/null || true)"
      [ -n "$p" ] && candidates+=("$p")
    done
    local root
    root="$(pyenv root 2>/dev/null || true)"
    [ -n "$root" ] && candidates+=("$root"/versions/3.1[2-9]*/bin/python)
  fi
  candidates+=("$HOME"/.pyenv/versions/3.1[2-9]*/bin/python /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9])
  local c
  for c in "${candidates[@]}"; do
    # pyenv shims exist for versions that are not active and fail when run: is_py312 filters them out.
    if [ -x "$c" ] && is_py312 "$c"; then
      printf '%s\n' "$c"
      return 0
    fi
  done
  return 1
}

installed_version() {  # venv, distribution -> version or nothing
  "$1/bin/python" -c 'import sys
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass' "$2" 2>/dev/null || true
}

PY=""
for entry in "${CLIENTS[@]}"; do
  IFS='|' read -r name req dist want flags <<<"$entry"
  venv="$VENVS/$name"
  if [ -x "$venv/bin/python" ] && [ "$(installed_version "$venv" "$dist")" = "$want" ]; then
    log "$name: $dist $want already installed in $venv"
    continue
  fi
  if [ -z "$PY" ]; then
    if ! PY="$(find_python)"; then
      log "ERROR: no Python >= 3.12 found (tried INTEROP_PYTHON, python3.12/3.13/3.14 on PATH, pyenv versions)." >&2
      log "Install one (e.g. 'pyenv install 3.12') or set INTEROP_PYTHON=/path/to/python3.12." >&2
      exit 1
    fi
    log "using $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
  fi
  if [ ! -x "$venv/bin/python" ] || ! is_py312 "$venv/bin/python"; then
    log "$name: creating venv $venv"
    rm -rf "$venv"
    mkdir -p "$VENVS"
    "$PY" -m venv "$venv"
  fi
  log "$name: pip install $flags $req"
  # shellcheck disable=SC2086  # $flags is empty or one flag
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $flags "$req"
  got="$(installed_version "$venv" "$dist")"
  if [ "$got" != "$want" ]; then
    log "ERROR: $name: expected $dist $want, found '${got:-nothing}'" >&2
    exit 1
  fi
  log "$name: installed $dist $got"
done
log "done: client venvs in $VENVS"
