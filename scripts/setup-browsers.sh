#!/usr/bin/env bash
# Install what the browser tests need: Debian's chromium and firefox-esr (apt-get, as root) and the
# pinned npm packages of tests/browser and demo/ (npm ci from the committed lockfiles), then bundle the pages.
# Also Debian's tshark (dumpcap + tshark) for the capture test (tests/observability/test_tshark.py),
# and Debian's ffmpeg, which makes the demo's video at build time (demo/build.mjs: dist/video.webm).
# Without root, missing browsers are reported and the browser tests skip (they fail when CI is set).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || missing+=(firefox-esr)
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]} with apt-get"
        apt-get update -qq
        # tshark asks whether non-root users may capture: keep the default (no), non-interactively.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "WARNING: ${missing[*]} missing and cannot install without root apt-get;" \
             "browser, capture and video tests will skip (run: sudo apt-get install ${missing[*]})" >&2
    fi
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "WARNING: npm missing; browser tests will skip (install Node.js 20+)" >&2
    exit 0
fi
cd tests/browser
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build

# The use-case pages and the `serve --demo` page (demo/, its own pinned npm project).
cd ../../demo
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build

# The independent /quic-v1 peer of the interop tests (Node + @chainsafe/libp2p-quic, its own
# pinned npm project; tests/interop/test_node_quic.py).
cd ../tests/interop/node_quic
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
