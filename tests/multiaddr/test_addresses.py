"""What a host advertises (``addresses.py``): the current certhash pair on every WebTransport
address, whatever produced it (listen, announce, a user's factory, identify observations), and
``--announce`` parsing with clear errors."""

from __future__ import annotations

import hashlib

import pytest
from multiaddr import Multiaddr

from py_libp2p_webtransport.addresses import (
    compose_addrs_factory,
    parse_announce_addr,
    with_current_certhashes,
)
from py_libp2p_webtransport.errors import AddressError
from py_libp2p_webtransport.multiaddr import multihash_to_text, parse_webtransport_multiaddr


def mh(name: bytes) -> bytes:
    return bytes([0x12, 0x20]) + hashlib.sha256(name).digest()


OLD = [mh(b"c1"), mh(b"c2")]
NEW = [mh(b"c2"), mh(b"c3")]


def text(hashes: list[bytes]) -> str:
    return "".join(f"/certhash/{multihash_to_text(h)}" for h in hashes)


def test_webtransport_addresses_get_exactly_the_current_pair() -> None:
    listen = Multiaddr("/ip4/127.0.0.1/udp/4001/quic-v1/webtransport" + text(OLD))
    # ObservedAddrManager builds observed addresses from listen suffixes it has seen, old pairs
    # included, and the bare thin waist; a /p2p suffix stays last.
    observed_stale = Multiaddr("/ip4/203.0.113.9/udp/4001/quic-v1/webtransport" + text(OLD))
    observed_fresh = Multiaddr("/ip4/203.0.113.9/udp/4001/quic-v1/webtransport" + text(NEW))
    bare = Multiaddr("/ip4/203.0.113.9/udp/4001")
    tcp = Multiaddr("/ip4/203.0.113.9/tcp/4001")
    out = with_current_certhashes([listen, observed_stale, bare, observed_fresh, tcp], NEW)
    assert [str(a) for a in out] == [
        "/ip4/127.0.0.1/udp/4001/quic-v1/webtransport" + text(NEW),
        "/ip4/203.0.113.9/udp/4001/quic-v1/webtransport" + text(NEW),  # once, not twice
        "/ip4/203.0.113.9/udp/4001",
        "/ip4/203.0.113.9/tcp/4001",
    ]


def test_factory_announce_replaces_candidates_and_the_user_factory_runs_before_certhashes() -> None:
    pair = list(OLD)
    candidates = [Multiaddr("/ip4/127.0.0.1/udp/1/quic-v1/webtransport" + text(OLD))]
    announce = [Multiaddr("/dns4/node.example.com/udp/443/quic-v1/webtransport")]

    def user(addrs: list[Multiaddr]) -> list[Multiaddr]:
        # A user factory that adds an address carrying some other pair.
        return [*addrs, Multiaddr("/ip4/198.51.100.1/udp/9/quic-v1/webtransport" + text(NEW))]

    factory = compose_addrs_factory(lambda: pair, announce=announce, then=user)
    assert [str(a) for a in factory(candidates)] == [
        "/dns4/node.example.com/udp/443/quic-v1/webtransport" + text(OLD),
        "/ip4/198.51.100.1/udp/9/quic-v1/webtransport" + text(OLD),
    ]
    pair[:] = NEW  # a rotation: the factory reads the pair on every call
    assert all(list(parse_webtransport_multiaddr(a).certhashes) == NEW for a in factory(candidates))
    # Without announce, the candidates themselves are advertised.
    plain = compose_addrs_factory(lambda: NEW)
    assert [str(a) for a in plain(candidates)] == [
        "/ip4/127.0.0.1/udp/1/quic-v1/webtransport" + text(NEW)
    ]


@pytest.mark.parametrize(
    "good",
    [
        "/ip4/203.0.113.9/udp/4001/quic-v1/webtransport",
        "/ip6/2001:db8::1/udp/4001/quic-v1/webtransport",
        "/dns4/node.example.com/udp/443/quic-v1/webtransport",
        "/dns/node.example.com/tcp/4001",
        "/ip4/203.0.113.9/udp/4001/quic-v1/webtransport" + text(OLD),
    ],
)
def test_announce_accepts_dialable_addresses(good: str) -> None:
    assert parse_announce_addr(good).to_bytes() == Multiaddr(good).to_bytes()


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("node.example.com:4001", "starting with '/'"),
        ("/ip4/203.0.113.9", "needs /tcp/PORT or /udp/PORT"),
        ("/ip4/999.0.0.1/udp/1/quic-v1/webtransport", "invalid announce address"),
        ("/dns4/node.example.com/udp/443/webtransport", "not a WebTransport address"),
        ("/udp/443/quic-v1/webtransport", "must start with /ip4"),
        ("/nonsense/1", "unknown multiaddr protocol"),
        (
            "/ip4/203.0.113.9/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
            "must not carry /p2p",
        ),
    ],
)
def test_announce_refuses_bad_input_with_a_reason(bad: str, why: str) -> None:
    with pytest.raises(AddressError, match=why):
        parse_announce_addr(bad)
