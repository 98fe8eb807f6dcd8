"""``serve --dht``: Kademlia (``/ipfs/kad/1.0.0``) in server mode (``apps/dht.py``).

A browser running ``@libp2p/kad-dht`` in client mode and connected to this node finds, through
it, the providers of a CID and the addresses of the peers the node knows. ``--dht-bootstrap
ADDR`` (repeatable, implies ``--dht``) joins the DHT of the peers at ``ADDR`` (with ``/p2p/``).
The joins run before ``serve`` prints its addresses, so a node that says it is up is in the DHT;
a bootstrap peer that cannot be reached is logged and skipped (after the dial timeout, 5 s by
default): the node serves anyway. ``serve --demo`` runs the DHT too (its page looks the demo's
content and the node up through it); ``--no-dht`` turns it off.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from libp2p.abc import IHost
from multiaddr import Multiaddr

from .deploy import UsageError

if TYPE_CHECKING:
    from ..apps.dht import DHT

log = logging.getLogger(__name__)


def peer_multiaddr(text: str) -> Multiaddr:
    """A multiaddr that ends in ``/p2p/<peer id>`` (argparse type)."""
    try:
        addr = Multiaddr(text)
    except Exception as error:  # the multiaddr library raises several kinds
        raise argparse.ArgumentTypeError(f"not a multiaddr: {text!r} ({error})") from None
    if "/p2p/" not in str(addr):
        raise argparse.ArgumentTypeError(f"must end in /p2p/<peer id>: {text!r}")
    return addr


def add_dht_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dht`` and ``--dht-bootstrap`` on the ``serve`` parser."""
    g = parser.add_argument_group("DHT (serve --dht)")
    g.add_argument(
        "--dht",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the Kademlia DHT (/ipfs/kad/1.0.0) in server mode: browsers find providers "
        "and peers through this node (default: on with --demo or --dht-bootstrap)",
    )
    g.add_argument(
        "--dht-bootstrap",
        action="append",
        default=[],
        type=peer_multiaddr,
        metavar="ADDR",
        help="join the DHT of the peer at ADDR (ends in /p2p/<id>; repeatable; implies --dht)",
    )


def dht_wanted(args: argparse.Namespace) -> bool:
    """Whether ``serve`` runs the DHT: ``--dht``/``--no-dht``, else on with ``--demo`` or
    ``--dht-bootstrap``. ``UsageError`` for ``--no-dht`` with ``--dht-bootstrap``."""
    bootstrap = getattr(args, "dht_bootstrap", [])
    wanted = getattr(args, "dht", None)
    if wanted is False and bootstrap:
        raise UsageError("--no-dht and --dht-bootstrap contradict each other: drop one")
    if wanted is None:
        return bool(bootstrap) or getattr(args, "demo", False)
    return bool(wanted)


@asynccontextmanager
async def running_dht_from_args(host: IHost, args: argparse.Namespace) -> AsyncIterator[DHT | None]:
    """The DHT ``args`` ask for on a running ``host`` (None when ``dht_wanted`` says no)."""
    bootstrap = getattr(args, "dht_bootstrap", [])
    if not dht_wanted(args):
        yield None
        return
    from ..apps.dht import running_dht  # py-libp2p's Kademlia, loaded only when asked for

    async with running_dht(host) as dht:
        for addr in bootstrap:
            try:
                await dht.join(addr)
            except Exception as error:  # a dead peer must not stop the node
                log.warning("DHT bootstrap peer %s unreachable, skipped: %s", addr, error)
        yield dht
