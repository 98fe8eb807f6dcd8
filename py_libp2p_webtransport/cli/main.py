"""``py-libp2p-webtransport``: the argument parser, ``serve`` and the entry point.

``py-libp2p-webtransport perf MULTIADDR`` measures a ``/perf/1.0.0`` server (``cli/perf.py``).
``py-libp2p-webtransport serve`` starts a libp2p host on a WebTransport address that serves
ping, identify, ``/echo/1.0.0`` and ``/perf/1.0.0``, prints its full multiaddrs (one per line,
ready to paste into a browser node) and runs until Ctrl-C or SIGTERM. ``--metrics`` serves
Prometheus metrics over HTTP, ``--stats`` prints a line every few seconds, SIGUSR1 prints every
connection's state (WebTransport and ``/quic-v1`` alike).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import trio

from ..endpoint.retry import RETRY_MODES
from .demo import add_demo_arguments
from .deploy import UsageError, add_deployment_arguments
from .dht import add_dht_arguments
from .perf import add_perf_parser

if TYPE_CHECKING:
    from multiaddr import Multiaddr

    from ..config import WebTransportConfig

PROG = "py-libp2p-webtransport"


def package_version() -> str:
    """The installed distribution's version (or the source tree's when not installed)."""
    try:
        return version("py-libp2p-webtransport")
    except PackageNotFoundError:
        return "0+unknown"


def config_from_args(args: argparse.Namespace) -> WebTransportConfig:
    """The transport configuration the ``serve`` options ask for."""
    from ..config import WebTransportConfig

    return WebTransportConfig(
        engine=args.engine,
        retry=args.retry,
        metrics=args.metrics is not None,
        qlog_dir=args.qlog_dir,
    )


def metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) of ``--metrics``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def serve(args: argparse.Namespace) -> int:
    """Run the ``serve`` command until a signal arrives."""
    from ..apps.services import register_handlers
    from ..host import new_host, webtransport_of
    from . import deploy
    from .demo import check_demo, running_demo
    from .dht import dht_wanted, running_dht_from_args
    from .stats import dump_on_sigusr1, print_stats, transports_of

    check_demo(args)  # --demo without the built page: how to build it, exit 2
    dht_wanted(args)  # --no-dht with --dht-bootstrap: UsageError before anything starts
    if args.print_certhashes:
        deploy.print_certhashes(args)
        return 0
    listen = deploy.listen_addrs_from_args(args)
    announce = deploy.announce_addrs_from_args(args)
    key_pair = deploy.key_pair_from_args(args)
    # TCP + WebTransport, the identify fix, certhashes on every address, rotations announced.
    host = new_host(
        key_pair,
        listen,
        announce=announce,
        config=config_from_args(args),
        index_tasks=not args.stock_task_lookup,
        **deploy.host_options_from_args(args),  # --max-connections
    )
    transport = webtransport_of(host)
    ours = transports_of(host)  # WebTransport and QUIC: the live views show both
    register_handlers(host)
    if args.metrics is not None:
        from prometheus_client import start_http_server

        metrics_host, metrics_port = args.metrics
        # A daemon thread: it ends with the process. Port 0 picks a free one; say which.
        server, _ = start_http_server(metrics_port, addr=metrics_host)
        shown = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
        print(f"metrics on http://{shown}:{server.server_port}/metrics", file=sys.stderr)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with (
            host.run(listen_addrs=listen),
            running_dht_from_args(host, args) as dht,  # --dht, --dht-bootstrap, --demo
            running_demo(host, args, dht),
            trio.open_nursery() as views,
        ):
            await views.start(dump_on_sigusr1, ours)
            if args.stats is not None:
                views.start_soon(print_stats, ours, args.stats)
            peer = host.get_id()
            # WebTransport first (what a browser pastes), then QUIC (same UDP port), then TCP.
            texts = []
            for addr in sorted(host.get_addrs(), key=_address_rank):
                text = str(addr)
                texts.append(text if "/p2p/" in text else f"{text}/p2p/{peer}")
            # One write: a reader of the pipe gets every address at once.
            sys.stdout.write("".join(f"{text}\n" for text in texts))
            sys.stdout.flush()
            async for signum in signals:
                name = signal.Signals(signum).name
                logging.getLogger(__name__).info("got %s, shutting down", name)
                break
            views.cancel_scope.cancel()
        await transport.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate for tests and docs)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run a libp2p host on a WebTransport address")
    s.add_argument("--host", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=0, help="UDP port (default 0: any free port)")
    s.add_argument(
        "--engine", choices=("qh3", "aioquic"), default=None, help="QUIC engine (default: best)"
    )
    s.add_argument(
        "--retry",
        choices=RETRY_MODES,
        default="under_load",
        help="QUIC address validation (Retry): off, always (every new client), or under_load "
        "(while many handshakes are pending or a source floods Initials; the default)",
    )
    s.add_argument(
        "--metrics",
        type=metrics_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (e.g. 127.0.0.1:9464)",
    )
    s.add_argument(
        "--stats",
        type=float,
        nargs="?",
        const=5.0,
        metavar="SECONDS",
        help="print connections, streams, throughput, handshakes/s and drops to stderr every "
        "SECONDS (default 5); SIGUSR1 prints every connection's state in any case",
    )
    s.add_argument(
        "--qlog-dir",
        metavar="DIR",
        help="write one qlog file (.sqlog, JSON-SEQ) per QUIC connection into DIR "
        "(default: $QLOGDIR if set)",
    )
    s.add_argument(
        "--log-level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level (default WARNING)",
    )
    add_deployment_arguments(s)  # --key-file, --listen, --announce, --print-certhashes (deploy.py)
    add_demo_arguments(s)  # ``serve --demo`` (demo.py)
    add_dht_arguments(s)  # ``serve --dht`` (dht.py)
    add_perf_parser(sub)  # ``perf MULTIADDR``: the /perf/1.0.0 client (cli/perf.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``py-libp2p-webtransport`` script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "WARNING")),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve":
        try:
            return trio.run(serve, args)
        except UsageError as error:  # bad input: say what to do, no traceback
            print(f"{PROG} serve: error: {error}", file=sys.stderr)
            return 2
    status: int = args.func(args)
    return status


def _address_rank(addr: Multiaddr) -> int:
    text = str(addr)
    return 0 if "/webtransport" in text else 1 if "/quic-v1" in text else 2
