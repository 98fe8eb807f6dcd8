"""``serve`` for deployment: a persistent identity, listen and announce addresses, the certhash
schedule.

- Identity: the host key lives at ``--key-file``, by default ``$XDG_CONFIG_HOME/
  py-libp2p-webtransport/node.key`` (``~/.config/...``), created with mode 600 on first run and
  refused when others can read it. ``--ephemeral`` uses a new key and writes nothing.
- ``--listen ADDR`` (repeatable): WebTransport, QUIC and TCP addresses, ``0.0.0.0``/``::`` included.
  Without it, ``--host``/``--port`` give one WebTransport and one QUIC address on one UDP socket
  (default loopback only).
- ``--announce ADDR`` (repeatable): the addresses to advertise instead (a public IP or
  ``/dns4/...`` name behind NAT); WebTransport ones get the current certhashes.
- ``--print-certhashes [--days N]``: print, as JSON, the certhash pair valid in each period of the
  next N days, and exit (certificates are a pure function of the key and the time).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from libp2p.crypto.keys import KeyPair, PrivateKey
from multiaddr import Multiaddr

from .._errors import AddressError

APP_DIR = "py-libp2p-webtransport"
DEFAULT_DAYS = 30


class UsageError(Exception):
    """Bad input on the command line or in a file it names: the message says what to do."""


def default_key_path() -> Path:
    """``$XDG_CONFIG_HOME/py-libp2p-webtransport/node.key`` (``~/.config`` without it)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP_DIR / "node.key"


def add_deployment_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` options of this module (see the module docstring)."""
    g = parser.add_argument_group("deployment")
    g.add_argument(
        "--key-file",
        help="host key file, created (mode 600) on first run and reused after: stable peer id "
        f"and certhashes (default: {default_key_path()})",
    )
    g.add_argument(
        "--ephemeral", action="store_true", help="a new identity for this run; no key file"
    )
    g.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="listen multiaddr, repeatable: /ip4|ip6/HOST/udp/PORT/quic-v1/webtransport, "
        "/ip4|ip6/HOST/udp/PORT/quic-v1 (the same port shares one socket) or "
        "/ip4|ip6/HOST/tcp/PORT (0.0.0.0 and :: for every interface); replaces --host/--port",
    )
    g.add_argument(
        "--announce",
        action="append",
        metavar="ADDR",
        help="advertise this multiaddr instead of the listen addresses, repeatable (a public IP "
        "or /dns4/NAME/udp/PORT/quic-v1/webtransport behind NAT; certhashes are added)",
    )
    g.add_argument(
        "--max-connections",
        type=positive_int,
        metavar="N",
        help="connections the host keeps (py-libp2p's connection and resource managers; "
        "without it py-libp2p prunes to 100 above 300 and refuses inbound beyond 256)",
    )
    g.add_argument(
        "--stock-task-lookup",
        action="store_true",
        help="leave py-libp2p's task parent lookup as it is: a walk over every open "
        "connection's task on each accept (for comparison; see task_lookup.py)",
    )
    g.add_argument(
        "--print-certhashes",
        action="store_true",
        help="print the certhash pair of each period of the next --days days as JSON, and exit",
    )
    g.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help=f"with --print-certhashes: how far ahead (default {DEFAULT_DAYS})",
    )


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def host_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``libp2p.new_host`` options of ``serve``: the connection limit (``--max-connections``).

    py-libp2p bounds connections twice: its connection manager prunes above a high watermark
    (300) down to a low one (100), and its resource manager refuses established inbound
    connections beyond 256 (1,000 in all). A node told to keep N connections gets N in both
    (the manager prunes only above N); stream and memory limits grow with N."""
    if args.max_connections is None:
        return {}
    from libp2p.network.config import ConnectionConfig
    from libp2p.rcmgr import new_resource_manager
    from libp2p.rcmgr.connection_limits import new_connection_limits_with_defaults
    from libp2p.rcmgr.manager import ResourceLimits

    n = args.max_connections
    defaults = ConnectionConfig()
    low = min(defaults.low_watermark, n)
    connections = ConnectionConfig(
        max_connections=n,
        high_watermark=n,
        low_watermark=low,
        # py-libp2p keeps max - min slots for inbound connections: most of them here
        min_connections=min(defaults.min_connections, n // 10),
    )
    limits = new_connection_limits_with_defaults()
    limits.max_established_inbound = n
    limits.max_established_total = max(n, limits.max_established_total or 0)
    base = ResourceLimits()
    resources = ResourceLimits(
        max_connections=max(n, base.max_connections),
        max_memory_mb=max(base.max_memory_bytes // (1 << 20), n // 8),  # 128 KiB per connection
        max_streams=max(base.max_streams, 4 * n),
    )
    return {
        "connection_config": connections,
        "resource_manager": new_resource_manager(limits=resources, connection_limits=limits),
    }


# --- identity ---------------------------------------------------------------------------------


def key_pair_from_args(args: argparse.Namespace) -> KeyPair:
    """The host key: ``--ephemeral``, else ``--key-file`` or the default path."""
    if args.ephemeral:
        if args.key_file:
            raise UsageError("--ephemeral and --key-file exclude each other")
        from libp2p.crypto.ed25519 import create_new_key_pair

        return create_new_key_pair()
    return load_or_create_key(Path(args.key_file) if args.key_file else default_key_path())


def load_or_create_key(path: Path | None) -> KeyPair:
    """Load the host key from ``path`` (libp2p protobuf encoding); create it on first run.

    Reusing the key keeps the peer id, and since certificates derive from it, the certhashes. A
    key that group or others may read is refused (``UsageError``), as ssh does.
    """
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.serialization import deserialize_private_key

    if path is not None and path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise UsageError(
                f"key file {path} has mode {mode:04o}: others may read the private key; "
                f"run `chmod 600 {path}`"
            )
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read key file {path}: {error.strerror}") from error
        try:
            private: PrivateKey = deserialize_private_key(data)
        except Exception as error:  # protobuf and key decoders raise several types
            raise UsageError(f"key file {path} does not hold a libp2p private key") from error
        return KeyPair(private, private.get_public_key())
    key_pair = create_new_key_pair()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Private key material: owner-only, created atomically.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise UsageError(f"cannot create key file {path}: {error.strerror}") from error
        with os.fdopen(fd, "wb") as f:
            f.write(key_pair.private_key.serialize())
    return key_pair


# --- addresses --------------------------------------------------------------------------------


def listen_addrs_from_args(args: argparse.Namespace) -> list[Multiaddr]:
    """``--listen`` addresses, else the WebTransport and QUIC addresses of ``--host``/``--port``
    (one UDP socket)."""
    from .. import multiaddr as wt_multiaddr

    if not args.listen:
        # Both on one UDP socket (shared_endpoint.py): WebTransport for browsers, QUIC for nodes.
        family = "ip6" if ":" in args.host else "ip4"
        base = f"/{family}/{args.host}/udp/{args.port}/quic-v1"
        return [Multiaddr(f"{base}/webtransport"), Multiaddr(base)]
    if args.host != "127.0.0.1" or args.port != 0:
        raise UsageError("--listen replaces --host/--port: give one or the other")
    out = []
    for text in args.listen:
        try:
            addr = wt_multiaddr.parse_multiaddr(text)
        except AddressError as error:
            raise UsageError(f"--listen {text}: {error}") from error
        names = [proto.name for proto in addr.protocols()]
        is_tcp = names[:1] in (["ip4"], ["ip6"]) and names[1:] == ["tcp"]
        if wt_multiaddr.is_quic_multiaddr(addr, draft29=True):
            try:
                quic = wt_multiaddr.parse_quic_multiaddr(addr)
            except AddressError as error:  # draft-29 /quic: its own message
                raise UsageError(f"--listen {text}: {error}") from error
            if quic.is_dns or quic.peer_id is not None:
                raise UsageError(f"--listen {text}: an IP address without /p2p")
            out.append(addr)
            continue
        if is_tcp:
            out.append(addr)
            continue
        try:
            parsed = wt_multiaddr.parse_webtransport_multiaddr(addr)
        except AddressError as error:
            raise UsageError(
                f"--listen {text}: not /ip4|ip6/HOST/udp/PORT/quic-v1[/webtransport] "
                "nor /ip4|ip6/HOST/tcp/PORT"
            ) from error
        if parsed.is_dns or parsed.certhashes or parsed.peer_id is not None:
            raise UsageError(f"--listen {text}: an IP address without /certhash or /p2p")
        out.append(addr)
    return out


def announce_addrs_from_args(args: argparse.Namespace) -> list[Multiaddr] | None:
    """``--announce`` addresses (None without any)."""
    from ..addresses import parse_announce_addr

    if not args.announce:
        return None
    out = []
    for text in args.announce:
        try:
            out.append(parse_announce_addr(text))
        except AddressError as error:
            raise UsageError(f"--announce: {error}") from error
    return out


# --- the certhash schedule --------------------------------------------------------------------


def certhash_schedule_json(private_key: PrivateKey, now: float, days: int) -> dict[str, Any]:
    """The pairs a listener with this key advertises from ``now`` for ``days`` days."""
    from libp2p.peer.id import ID

    from ..certs import certhash_schedule
    from ..multiaddr import multihash_to_text

    if days < 1:
        raise UsageError(f"--days must be at least 1, got {days}")

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")

    periods = []
    for period in certhash_schedule(private_key, now, now + days * 86_400):
        hashes = [multihash_to_text(h) for h in period.certhashes]
        periods.append(
            {
                "from": iso(period.start),
                "until": iso(period.end),
                "from_unix": period.start,
                "until_unix": period.end,
                "certhashes": hashes,
                "suffix": "".join(f"/certhash/{h}" for h in hashes),
            }
        )
    return {"peer_id": str(ID.from_pubkey(private_key.get_public_key())), "periods": periods}


def print_certhashes(args: argparse.Namespace) -> None:
    """``serve --print-certhashes``: the schedule as JSON on stdout."""
    key_pair = key_pair_from_args(args)
    schedule = certhash_schedule_json(key_pair.private_key, time.time(), args.days)
    print(json.dumps(schedule, indent=1))
