#!/usr/bin/env bash
# Build and check wheels locally without cibuildwheel (no containers needed):
#   - one platform wheel per CPython found (3.10-3.13 by default), each installed into a fresh venv
#     that must report IMPLEMENTATION == "cython";
#   - the pure-Python py3-none-any wheel (PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS=1), which must report "python";
#   - the sdist, which must carry the .pyx sources and the demo page's sources, and build.
# Every wheel carries the demo page (py_libp2p_webtransport/demo_page/, built by setup.py from
# demo/'s pinned npm packages): Node (npm) and ffmpeg are needed here, never to install a wheel.
# Output goes to wheels/dist/ (git-ignored). Usage: bash wheels/build-local.sh [3.10 3.11 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PY_LIBP2P_WEBTRANSPORT_REQUIRE_DEMO=1  # a wheel without the page fails its build
REPO=$(pwd)
OUT=wheels/dist
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12 3.13)

find_python() {  # a CPython X.Y interpreter that runs: pyenv's, else pythonX.Y on PATH
    local v=$1 p="" d
    if command -v pyenv >/dev/null 2>&1; then
        for d in "$(pyenv root)"/versions/"$v".*; do [ -x "$d/bin/python" ] && p="$d/bin/python"; done
    fi
    [ -n "$p" ] || p=$(command -v "python$v" 2>/dev/null || true)
    # pyenv shims exist for versions that are not selected and then fail: check it runs.
    if [ -n "$p" ] && ! "$p" -c 'pass' >/dev/null 2>&1; then p=""; fi
    echo "$p"
}

check_wheel() {  # install a wheel into a fresh venv and print the implementation it reports
    local py=$1 wheel=$2 expected=$3 venv="$WORK/venv-$RANDOM"
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet "$wheel"
    local got
    got=$(cd "$WORK" && "$venv/bin/python" -c 'import py_libp2p_webtransport as p; print(p.IMPLEMENTATION)')
    echo "   $(basename "$wheel"): IMPLEMENTATION=$got"
    [ "$got" = "$expected" ] || { echo "expected $expected" >&2; return 1; }
    # serve --demo finds the page inside the installed package (no checkout, no Node needed).
    (cd "$WORK" && "$venv/bin/python" -c '
from py_libp2p_webtransport.cli.demo_page import PACKAGED_PAGE, find_page, missing_page
page = find_page(None)
assert page == PACKAGED_PAGE and missing_page(page) is None, (page, missing_page(page))
assert (page / "dist" / "video.webm").is_file(), "no video in the page"
') || { echo "$(basename "$wheel") lacks the demo page" >&2; return 1; }
}

for v in "${versions[@]}"; do
    py=$(find_python "$v")
    if [ -z "$py" ]; then echo "== CPython $v: not found, skipped"; continue; fi
    echo "== CPython $v ($py): platform wheel"
    "$py" -m pip wheel --quiet --no-deps -w "$WORK/w$v" .
    wheel=$(ls "$WORK/w$v"/*.whl)
    case "$wheel" in *none-any*) echo "got a pure wheel from an accelerated build" >&2; exit 1;; esac
    cp "$wheel" "$OUT/"
    check_wheel "$py" "$wheel" cython
done

echo "== pure-Python wheel"
PY_LIBP2P_WEBTRANSPORT_NO_EXTENSIONS=1 python3 -m pip wheel --quiet --no-deps -w "$WORK/pure" .
pure=$(ls "$WORK/pure"/*.whl)
case "$pure" in *py3-none-any*) ;; *) echo "pure build is not py3-none-any: $pure" >&2; exit 1;; esac
cp "$pure" "$OUT/"
check_wheel python3 "$pure" python

echo "== sdist"
# The `build` frontend gets its own venv, and runs from outside the tree: the build/ folder the
# wheel steps leave here would otherwise shadow it ("No module named build.__main__").
python3 -m venv "$WORK/frontend"
"$WORK/frontend/bin/pip" install --quiet build
(cd "$WORK" && "$WORK/frontend/bin/python" -m build --sdist --outdir "$WORK/sdist" "$REPO") >/dev/null
sdist=$(ls "$WORK/sdist"/*.tar.gz)
listing=$(tar tzf "$sdist")  # (grep -q on a pipe would SIGPIPE tar under pipefail)
for pyx in _wire_c _mux_c _udp_c; do
    grep -q "csrc/$pyx.pyx" <<<"$listing" || { echo "sdist lacks csrc/$pyx.pyx" >&2; exit 1; }
done
for f in demo/package-lock.json demo/demo.html demo/build.mjs demo/src/demo.js; do
    grep -q "/$f\$" <<<"$listing" || { echo "sdist lacks $f" >&2; exit 1; }
done
if grep -q '/demo/node_modules/' <<<"$listing"; then echo "sdist carries node_modules" >&2; exit 1; fi
if grep -q 'csrc/.*\.c$' <<<"$listing"; then echo "sdist carries generated C" >&2; exit 1; fi
cp "$sdist" "$OUT/"
python3 -m pip wheel --quiet --no-deps -w "$WORK/from-sdist" "$sdist"
check_wheel python3 "$(ls "$WORK/from-sdist"/*.whl)" cython
echo "== all wheels in $OUT"
ls -1 "$OUT"
