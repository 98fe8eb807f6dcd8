"""DHT lookup latency from a browser: `@libp2p/kad-dht` (client mode) in headless Chromium or
Firefox ESR, connected only to Python node A; B joined A and provides a file (the plan and its
checks: tests/support/dht_checks.py).

Not a test: it only measures. For each engine, browser and run: fresh nodes and a fresh browser;
prints the median of the runs for findPeer (of A, of B), findProviders (first provider, end of
the query), cold (the node's first lookups) and warm (the same lookups again), and the Helia cat
of the file from the provider found.

Usage: python benchmarks/dht_browser.py [--runs 5] [--engines qh3,aioquic] [--browsers chromium]
Run from the repository root after `python setup.py build_ext --inplace` and, in demo/ and
tests/browser, `npm ci && npm run build`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the tests support package

import trio  # noqa: E402
from support.browser_harness import missing_browser_piece  # noqa: E402
from support.dht_checks import browser_finds_providers_and_peers  # noqa: E402

from py_libp2p_webtransport import IMPLEMENTATION  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engines", default="qh3,aioquic")
    parser.add_argument("--browsers", default="chromium")
    args = parser.parse_args()
    print(f"implementation: {IMPLEMENTATION}; medians of {args.runs} runs")
    for browser in args.browsers.split(","):
        if (missing := missing_browser_piece(browser)) is not None:
            sys.exit(f"{browser}: {missing}")
        for engine in args.engines.split(","):
            runs = []
            for _ in range(args.runs):
                runs.append(await browser_finds_providers_and_peers(engine, browser))
            medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            shown = ", ".join(f"{key} {value:.1f}" for key, value in medians.items())
            print(f"{browser} {engine}: {shown}")


if __name__ == "__main__":
    trio.run(main)
