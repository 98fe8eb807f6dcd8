"""The addresses a host advertises: every WebTransport one carries the current certhash pair.

A browser can dial a WebTransport address only with the certhashes of the certificate the node
serves, so each address the host reports (listen, announced, factory-made or observed through
identify) gets the pair the listener advertises *now*; whatever pair it carried is dropped. Other
addresses (TCP, QUIC, ...) pass unchanged. go-libp2p does the same (``appendCerthashes``).

py-libp2p's ``ObservedAddrManager`` builds observed addresses from the suffixes of our listen
addresses and keeps every suffix it ever saw, so after a rotation it offers the stale pair too:
replacing certhashes (and removing the duplicates that leaves) is what keeps them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from multiaddr import Multiaddr

from . import multiaddr as wt_multiaddr
from ._errors import AddressError, InvalidCerthash

__all__ = [
    "AddrsFactory",
    "compose_addrs_factory",
    "parse_announce_addr",
    "with_current_certhashes",
]

AddrsFactory = Callable[[list[Multiaddr]], list[Multiaddr]]
"""py-libp2p's (and go's) address factory: candidate addresses in, advertised addresses out."""


def with_current_certhashes(
    addrs: Iterable[Multiaddr], certhashes: Sequence[bytes]
) -> list[Multiaddr]:
    """``addrs`` with each WebTransport address's certhashes replaced by ``certhashes``.

    Order is kept; an address equal to an earlier one after the replacement is dropped.
    """
    out: list[Multiaddr] = []
    seen: set[bytes] = set()
    for addr in addrs:
        if wt_multiaddr.is_webtransport_multiaddr(addr):
            addr = wt_multiaddr.with_certhashes(addr, certhashes)
        key = addr.to_bytes()
        if key not in seen:
            seen.add(key)
            out.append(addr)
    return out


def compose_addrs_factory(
    certhashes: Callable[[], Sequence[bytes]],
    *,
    announce: Sequence[Multiaddr] | None = None,
    then: AddrsFactory | None = None,
) -> AddrsFactory:
    """An address factory for a host whose WebTransport certificates come from ``certhashes()``.

    ``announce`` replaces the candidates (py-libp2p's ``announce_addrs`` semantics: the listen and
    observed addresses are not advertised); ``then`` is the user's own factory, applied next.
    The current certhash pair is added last, so neither can leave a stale pair in.
    """
    announced = list(announce) if announce is not None else None

    def factory(candidates: list[Multiaddr]) -> list[Multiaddr]:
        addrs = list(announced) if announced is not None else list(candidates)
        if then is not None:
            addrs = list(then(addrs))
        return with_current_certhashes(addrs, certhashes())

    return factory


def parse_announce_addr(text: str) -> Multiaddr:
    """Parse one ``--announce`` address; ``AddressError`` says what is wrong with it.

    Any multiaddr a peer could dial is accepted (``/ip4``, ``/ip6``, ``/dns``, ``/dns4``,
    ``/dns6`` hosts; TCP, WebTransport, ...). A WebTransport address may omit its certhashes:
    the host adds the current pair. A ``/p2p/`` suffix must be absent (the host adds its own).
    """
    text = text.strip()
    if not text.startswith("/"):
        raise AddressError(f"announce address must be a multiaddr starting with '/': {text!r}")
    try:
        addr = wt_multiaddr.parse_multiaddr(text)
    except (AddressError, InvalidCerthash) as error:
        raise AddressError(f"invalid announce address {text!r}: {error}") from error
    names = [proto.name for proto in addr.protocols()]
    if names[0] not in ("ip4", "ip6", "dns", "dns4", "dns6"):
        raise AddressError(
            f"announce address {text!r} must start with /ip4, /ip6, /dns, /dns4 or /dns6"
        )
    if len(names) < 2 or names[1] not in ("tcp", "udp"):
        raise AddressError(f"announce address {text!r} needs /tcp/PORT or /udp/PORT")
    if "p2p" in names:
        raise AddressError(f"announce address {text!r} must not carry /p2p (the host adds its own)")
    if "webtransport" in names and not wt_multiaddr.is_webtransport_multiaddr(addr):
        raise AddressError(
            f"announce address {text!r} is not a WebTransport address "
            "(/HOST/udp/PORT/quic-v1/webtransport)"
        )
    return addr
