"""WebTransport multiaddrs: certhash codec in every multibase, parse/print vectors, bad input."""

from __future__ import annotations

import hashlib

import multibase
import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from py_libp2p_webtransport.errors import AddressError, InvalidCerthash
from py_libp2p_webtransport.multiaddr import (
    WebTransportAddress,
    certhash_digest,
    certhash_multihash,
    decode_certhash,
    encode_certhash,
    is_webtransport_multiaddr,
    multihash_to_text,
    parse_webtransport_multiaddr,
    url_for,
    with_certhashes,
    without_certhashes,
)

DER_A = b"certificate A (any bytes stand in for DER here)"
DER_B = b"certificate B"
MH_A = bytes([0x12, 0x20]) + hashlib.sha256(DER_A).digest()
MH_B = bytes([0x12, 0x20]) + hashlib.sha256(DER_B).digest()
PEER = ID.from_pubkey(create_new_key_pair(b"\x07" * 32).public_key)
# Every text multibase py-multibase knows ("identity" is raw bytes, not text).
ALL_MULTIBASES = [enc.encoding for enc in multibase.ENCODINGS if enc.encoding != "identity"]


def mb(encoding: str, data: bytes) -> str:
    """Encode with py-multibase (an implementation independent of ours)."""
    return multibase.encode(encoding, data).decode("utf-8")


# --- certhash values ------------------------------------------------------------------------------


def test_certhash_multihash_is_sha256_multihash() -> None:
    assert certhash_multihash(DER_A) == MH_A
    assert certhash_digest(MH_A) == hashlib.sha256(DER_A).digest()


def test_encode_matches_py_multiaddr_printer() -> None:
    # py-multiaddr prints binary certhash components as base64url: an independent printer.
    binary = Multiaddr("/ip4/127.0.0.1/udp/1/quic-v1/webtransport").to_bytes()
    binary += bytes([0xD2, 0x03, len(MH_A)]) + MH_A  # varint(466) = d2 03, then the length
    printed = str(Multiaddr(binary)).rsplit("/", 1)[-1]
    assert encode_certhash(DER_A) == printed
    assert printed.startswith("u")


@pytest.mark.parametrize("encoding", ALL_MULTIBASES)
def test_decode_accepts_every_multibase(encoding: str) -> None:
    assert decode_certhash(mb(encoding, MH_A)) == MH_A


def test_encode_decode_round_trip() -> None:
    text = encode_certhash(DER_B)
    assert text.startswith("u") and "=" not in text
    assert decode_certhash(text) == MH_B
    assert multihash_to_text(MH_B) == text


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty
        "u",  # prefix only: empty multihash
        "x1234",  # unknown multibase prefix
        "uEiA!!!",  # characters outside base64url
        "f12",  # base16 of a 1-byte multihash
        "z1",  # base58btc of garbage
    ],
)
def test_decode_rejects_malformed_text(text: str) -> None:
    with pytest.raises(InvalidCerthash):
        decode_certhash(text)


@pytest.mark.parametrize(
    "mh",
    [
        bytes([0x11, 0x14]) + hashlib.sha1(DER_A).digest(),  # sha1 multihash
        bytes([0x13, 0x40]) + hashlib.sha512(DER_A).digest(),  # sha2-512 multihash
        bytes([0x12, 0x1F]) + hashlib.sha256(DER_A).digest()[:31],  # short sha256
        MH_A[:-1],  # truncated digest
        MH_A + b"\x00",  # trailing byte
        hashlib.sha256(DER_A).digest(),  # bare digest, no multihash header
    ],
)
def test_decode_rejects_unsupported_or_bad_length_hashes(mh: bytes) -> None:
    with pytest.raises(InvalidCerthash):
        decode_certhash(mb("base64url", mh))
    with pytest.raises(InvalidCerthash):
        certhash_digest(mh)
    with pytest.raises(InvalidCerthash):
        multihash_to_text(mh)


def test_decode_rejects_non_string() -> None:
    with pytest.raises(InvalidCerthash):
        decode_certhash(MH_A)  # type: ignore[arg-type]


# --- parse / print vectors -------------------------------------------------------------------


def test_parse_ip4_with_certhashes_and_peer() -> None:
    text = (
        f"/ip4/127.0.0.1/udp/4433/quic-v1/webtransport/certhash/{mb('base64url', MH_A)}"
        f"/certhash/{mb('base58btc', MH_B)}/p2p/{PEER.to_base58()}"
    )
    addr = parse_webtransport_multiaddr(text)
    assert addr == WebTransportAddress(
        host="127.0.0.1",
        port=4433,
        family="ip4",
        certhashes=(MH_A, MH_B),
        peer_id=PEER,
        sni=None,
    )
    assert not addr.is_dns
    assert url_for(addr) == "https://127.0.0.1:4433/.well-known/libp2p-webtransport?type=noise"


@pytest.mark.parametrize("encoding", ALL_MULTIBASES)
def test_parse_certhash_in_any_multibase(encoding: str) -> None:
    value = mb(encoding, MH_A)
    if "/" in value:  # a '/' cannot appear inside a multiaddr string component
        pytest.skip("this base64 text contains '/'")
    addr = parse_webtransport_multiaddr(f"/ip4/1.2.3.4/udp/1/quic-v1/webtransport/certhash/{value}")
    assert addr.certhashes == (MH_A,)


def test_parse_ip6_url_has_brackets() -> None:
    addr = parse_webtransport_multiaddr(
        f"/ip6/::1/udp/443/quic-v1/webtransport/certhash/{encode_certhash(DER_A)}"
    )
    assert (addr.host, addr.family, addr.sni) == ("::1", "ip6", None)
    assert url_for(addr) == "https://[::1]:443/.well-known/libp2p-webtransport?type=noise"


@pytest.mark.parametrize("family", ["dns", "dns4", "dns6"])
def test_parse_dns_gives_sni(family: str) -> None:
    addr = parse_webtransport_multiaddr(f"/{family}/example.com/udp/443/quic-v1/webtransport")
    assert (addr.host, addr.family, addr.sni, addr.is_dns) == (
        "example.com",
        family,
        "example.com",
        True,
    )
    assert url_for(addr) == "https://example.com:443/.well-known/libp2p-webtransport?type=noise"


@pytest.mark.parametrize(
    "text",
    [
        "/dns4/a.example/udp/443/quic-v1/sni/b.example/webtransport",
        "/dns4/a.example/udp/443/quic-v1/webtransport/sni/b.example",
        "/ip4/1.2.3.4/udp/443/quic-v1/webtransport/sni/b.example",
    ],
)
def test_sni_component_wins(text: str) -> None:
    assert parse_webtransport_multiaddr(text).sni == "b.example"


def test_legacy_quic_is_accepted() -> None:
    addr = parse_webtransport_multiaddr("/ip4/1.2.3.4/udp/5/quic/webtransport")
    assert (addr.host, addr.port, addr.certhashes) == ("1.2.3.4", 5, ())


def test_duplicate_certhashes_are_collapsed() -> None:
    text = (
        f"/ip4/1.2.3.4/udp/5/quic-v1/webtransport/certhash/{mb('base64url', MH_A)}"
        f"/certhash/{mb('base32', MH_A)}"
    )
    assert parse_webtransport_multiaddr(text).certhashes == (MH_A,)


def test_binary_and_multiaddr_inputs() -> None:
    ma = with_certhashes("/ip4/10.0.0.1/udp/9/quic-v1/webtransport", [MH_A])
    assert parse_webtransport_multiaddr(ma).certhashes == (MH_A,)
    assert parse_webtransport_multiaddr(ma.to_bytes()).certhashes == (MH_A,)


def test_non_base64url_string_is_normalised() -> None:
    # py-multiaddr 0.2.0 alone refuses this string; through our module it parses and prints as 'u'.
    text = f"/ip4/1.2.3.4/udp/5/quic-v1/webtransport/certhash/{mb('base58btc', MH_A)}"
    with pytest.raises(ValueError):
        Multiaddr(text)
    assert str(with_certhashes(text, [MH_A])).endswith("/certhash/" + multihash_to_text(MH_A))


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/1.2.3.4/udp/1/quic-v1",  # no webtransport
        "/ip4/1.2.3.4/tcp/1/quic-v1/webtransport",  # tcp
        "/ip4/1.2.3.4/udp/1/webtransport",  # no quic
        "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/quic-v1",  # junk after webtransport
        "/ip4/1.2.3.4/udp/1/webtransport/quic-v1",  # wrong order
        "/udp/1/quic-v1/webtransport",  # no host
        "/unix/tmp/x",  # not internet at all
        "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/sni/a.example/sni/b.example",  # two sni
        f"/ip4/1.2.3.4/udp/1/quic-v1/webtransport/p2p/{PEER.to_base58()}/certhash/{encode_certhash(DER_A)}",
        "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/certhash",  # certhash without value
        "/ip4/999.1.1.1/udp/1/quic-v1/webtransport",  # bad ip4
        "/ip6/zz::1/udp/1/quic-v1/webtransport",  # bad ip6
        "/ip4/1.2.3.4/udp/70000/quic-v1/webtransport",  # port out of range
        "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/p2p/notapeerid",  # bad peer id
        "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/bogus",  # unknown protocol
        "ip4/1.2.3.4/udp/1/quic-v1/webtransport",  # no leading slash
        "",
        "/",
    ],
)
def test_malformed_addresses_raise_address_error(text: str) -> None:
    with pytest.raises(AddressError):
        parse_webtransport_multiaddr(text)
    assert not is_webtransport_multiaddr(text)


def test_bad_certhash_in_address_raises_invalid_certhash() -> None:
    bad = mb("base64url", bytes([0x11, 0x14]) + hashlib.sha1(DER_A).digest())
    text = f"/ip4/1.2.3.4/udp/1/quic-v1/webtransport/certhash/{bad}"
    with pytest.raises(InvalidCerthash):
        parse_webtransport_multiaddr(text)
    # A non-SHA-256 multihash smuggled in through the binary form is refused too.
    binary = Multiaddr("/ip4/1.2.3.4/udp/1/quic-v1/webtransport").to_bytes()
    other = bytes([0x11, 0x14]) + hashlib.sha1(DER_A).digest()
    with pytest.raises(InvalidCerthash):
        parse_webtransport_multiaddr(binary + bytes([0xD2, 0x03, len(other)]) + other)


def test_garbage_bytes_and_wrong_types() -> None:
    with pytest.raises(AddressError):
        parse_webtransport_multiaddr(b"\xff\xff\xff")
    with pytest.raises(AddressError):
        parse_webtransport_multiaddr(12345)  # type: ignore[arg-type]


def test_is_webtransport_multiaddr_accepts_valid() -> None:
    assert is_webtransport_multiaddr("/ip4/127.0.0.1/udp/1/quic-v1/webtransport")
    assert is_webtransport_multiaddr(
        f"/dns/x.example/udp/1/quic-v1/webtransport/certhash/{encode_certhash(DER_A)}"
    )
    assert not is_webtransport_multiaddr("/ip4/127.0.0.1/udp/1/quic-v1")


# --- building addresses ----------------------------------------------------------------------


def test_with_certhashes_replaces_and_keeps_peer_last() -> None:
    base = (
        f"/ip4/127.0.0.1/udp/4433/quic-v1/webtransport/certhash/{encode_certhash(DER_A)}"
        f"/p2p/{PEER.to_base58()}"
    )
    out = with_certhashes(base, [MH_B, MH_A, MH_B])
    assert str(out) == (
        f"/ip4/127.0.0.1/udp/4433/quic-v1/webtransport/certhash/{multihash_to_text(MH_B)}"
        f"/certhash/{multihash_to_text(MH_A)}/p2p/{PEER.to_base58()}"
    )
    addr = parse_webtransport_multiaddr(out)
    assert addr.certhashes == (MH_B, MH_A)
    assert addr.peer_id == PEER


def test_without_certhashes() -> None:
    base = f"/ip6/::1/udp/1/quic-v1/webtransport/certhash/{encode_certhash(DER_A)}"
    assert str(without_certhashes(base)) == "/ip6/::1/udp/1/quic-v1/webtransport"


def test_with_certhashes_rejects_bad_hash_and_bad_address() -> None:
    with pytest.raises(InvalidCerthash):
        with_certhashes("/ip4/1.2.3.4/udp/1/quic-v1/webtransport", [b"\x12\x20short"])
    with pytest.raises(AddressError):
        with_certhashes("/ip4/1.2.3.4/udp/1/quic-v1", [MH_A])


# --- the parse cache -----------------------------------------------------------------------------


def test_parse_is_cached_by_binary_form_and_bounded() -> None:
    from py_libp2p_webtransport import multiaddr as wt_multiaddr

    base = "/ip4/10.0.0.1/udp/9/quic-v1/webtransport/certhash/"
    first = parse_webtransport_multiaddr(base + mb("base58btc", MH_A))
    # The same address as text in another multibase, as Multiaddr and as bytes: one entry.
    ma = Multiaddr(base + mb("base64url", MH_A))
    assert parse_webtransport_multiaddr(ma) is first
    assert parse_webtransport_multiaddr(ma.to_bytes()) is first
    assert first.certhashes == (MH_A,)
    # Errors are never cached: a malformed address fails every time.
    for _ in range(2):
        with pytest.raises(AddressError):
            parse_webtransport_multiaddr("/ip4/10.0.0.1/udp/9/quic-v1")
    for port in range(1, 2 * wt_multiaddr._PARSE_CACHE_SIZE):
        addr = parse_webtransport_multiaddr(f"/ip4/10.0.0.2/udp/{port}/quic-v1/webtransport")
        assert addr.port == port
    assert len(wt_multiaddr._PARSE_CACHE) <= wt_multiaddr._PARSE_CACHE_SIZE
