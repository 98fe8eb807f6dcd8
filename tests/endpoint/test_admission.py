"""Admission on its own: datagrams in, verdicts out; no socket, no engine, no clock (``now`` is a
number the test picks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import get_args

import pytest

from py_libp2p_webtransport._wire import encode_varint
from py_libp2p_webtransport.endpoint.admission import (
    DROP_MESSAGES,
    MAX_RATE_SOURCES,
    Accept,
    Admission,
    Drop,
    DropReason,
    InitialRateLimiter,
    Route,
    RouteTable,
    SendRetry,
)
from py_libp2p_webtransport.endpoint.connection import EndpointStats
from py_libp2p_webtransport.endpoint.quic_header import LongPacketType, parse_header
from py_libp2p_webtransport.endpoint.retry import read_initial_token
from py_libp2p_webtransport.errors import InvalidRetryToken, MalformedPacket

PEER = ("192.0.2.1", 4433)
OTHER_PEER = ("192.0.2.2", 4433)
NOW = 1000.0


@dataclass(eq=False)
class FakeConn:
    """What admission sees of a connection: where its peer is."""

    remote_address: tuple[str, int]


def initial(
    dcid: bytes | None = None, scid: bytes = b"", token: bytes = b"", size: int = 1200
) -> bytes:
    """A version 1 Initial of ``size`` bytes (noise after the header)."""
    dcid = os.urandom(8) if dcid is None else dcid
    head = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([len(dcid)]) + dcid
    head += bytes([len(scid)]) + scid + encode_varint(len(token)) + token
    head += (0x4000 | 1100).to_bytes(2, "big")
    return head + os.urandom(max(size - len(head), 0))


def long_header(first: int, dcid: bytes, version: int = 1, size: int = 1200) -> bytes:
    head = bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + b"\x00"
    return head + os.urandom(max(size - len(head), 0))


def short_header(dcid: bytes) -> bytes:
    return b"\x40" + dcid + os.urandom(40)


def admission(**kwargs: object) -> Admission[FakeConn]:
    options: dict[str, object] = {"max_half_open": 8, "initials_per_second": 50.0}
    options.update(kwargs)
    return Admission(**options)  # type: ignore[arg-type]


def drop_reason(verdict: object) -> str:
    assert isinstance(verdict, Drop), verdict
    return verdict.reason


# ---- the reasons ------------------------------------------------------------------------------


def test_drop_reasons_are_the_stats_counters() -> None:
    reasons = set(get_args(DropReason))
    counters = {f.name for f in fields(EndpointStats) if f.name.startswith("dropped_")}
    assert reasons == counters == set(DROP_MESSAGES)


# ---- route ------------------------------------------------------------------------------------


def test_known_ids_route_whatever_the_header() -> None:
    adm = admission()
    conn = FakeConn(PEER)
    cid = os.urandom(8)
    adm.routes.add(conn, [cid])
    for data in (short_header(cid), long_header(0xE0, cid), initial(cid)):  # Handshake, Initial
        verdict = adm.admit(data, PEER, NOW)
        assert isinstance(verdict, Route) and verdict.conn is conn
    assert adm.routes.get(cid) is conn  # the pump's fast path reads the same table


def test_initial_to_a_known_id_from_another_address_is_a_collision() -> None:
    adm = admission()
    cid = os.urandom(8)
    adm.routes.add(FakeConn(PEER), [cid])
    assert drop_reason(adm.admit(initial(cid), OTHER_PEER, NOW)) == "dropped_cid_collision"
    # A short header from elsewhere is a migrating peer, not a new client: routed.
    assert isinstance(adm.admit(short_header(cid), OTHER_PEER, NOW), Route)


# ---- accept -----------------------------------------------------------------------------------


def test_a_full_size_initial_is_accepted() -> None:
    dcid = os.urandom(8)
    verdict = admission().admit(initial(dcid, os.urandom(8)), PEER, NOW)
    assert verdict == Accept(original_destination_cid=dcid, retry_source_cid=None)


def test_without_retry_a_token_is_ignored() -> None:
    dcid = os.urandom(8)
    verdict = admission().admit(initial(dcid, token=os.urandom(40)), PEER, NOW)
    assert verdict == Accept(dcid, None)


# ---- drop: one case per reason ----------------------------------------------------------------


DROPS: dict[str, list[tuple[bytes, dict[str, object]]]] = {
    "dropped_malformed": [
        (b"", {}),
        (b"\x00" * 40, {}),  # a short header without the fixed bit
        (b"\xc0\x00\x00", {}),  # a truncated long header
        (bytes([0xC0]) + b"\x00\x00\x00\x01\x30" + os.urandom(60), {}),  # a 48-byte DCID
    ],
    "dropped_unknown_cid": [
        (short_header(os.urandom(8)), {}),
        (long_header(0xE0, os.urandom(8)), {}),  # a Handshake packet for nobody
    ],
    "dropped_bad_version": [(long_header(0xC0, os.urandom(8), version=0x6B3343CF), {})],
    "dropped_small_initial": [
        (initial(size=1199), {}),
        (initial(dcid=os.urandom(4)), {}),  # a client's first DCID has at least 8 bytes
    ],
    "dropped_not_listening": [(initial(), {"listening": False})],
    "dropped_half_open": [(initial(), {"half_open": 8})],
    "dropped_rate_limited": [],  # needs a spent bucket: see the rate tests below
    "dropped_cid_collision": [],  # needs a live connection: see the test above
    "dropped_invalid_token": [(initial(token=os.urandom(60)), {"retry": "always"})],
    "dropped_gated": [(initial(), {"address_verdict": lambda addr: "dropped_gated"})],
    "dropped_over_limit": [(initial(), {"address_verdict": lambda addr: "dropped_over_limit"})],
}


@pytest.mark.parametrize(
    "reason, data, setup",
    [(reason, data, setup) for reason, cases in DROPS.items() for data, setup in cases],
)
def test_drops(reason: str, data: bytes, setup: dict[str, object]) -> None:
    setup = dict(setup)
    half_open = setup.pop("half_open", 0)
    listening = setup.pop("listening", True)
    adm = admission(**setup)
    adm.half_open = half_open  # type: ignore[assignment]
    adm.listening = listening  # type: ignore[assignment]
    verdict = adm.admit(data, PEER, NOW)
    assert drop_reason(verdict) == reason
    assert len(adm.routes) == 0


def test_every_reason_has_a_case() -> None:
    assert set(DROPS) == set(get_args(DropReason))


def test_malformed_and_invalid_token_drops_say_why() -> None:
    malformed = admission().admit(b"", PEER, NOW)
    assert isinstance(malformed, Drop) and isinstance(malformed.detail, MalformedPacket)
    adm = admission(retry="always")
    forged = adm.admit(initial(token=os.urandom(60)), PEER, NOW)
    assert isinstance(forged, Drop) and isinstance(forged.detail, InvalidRetryToken)
    # A token length running past the datagram is malformed, not an invalid token.
    dcid = os.urandom(8)
    head = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([8]) + dcid + b"\x00"
    truncated = head + encode_varint(5000) + os.urandom(1200)
    assert drop_reason(adm.admit(truncated, PEER, NOW)) == "dropped_malformed"


# ---- rate limiting (a fake clock: ``now`` is ours) --------------------------------------------


def test_initials_per_source_are_rate_limited() -> None:
    adm = admission(initials_per_second=5.0, max_half_open=1000)
    verdicts = [adm.admit(initial(), PEER, NOW) for _ in range(6)]
    assert [type(v) for v in verdicts] == [Accept] * 5 + [Drop]  # the burst, then the limit
    assert drop_reason(verdicts[-1]) == "dropped_rate_limited"
    # Another port of the same host shares its bucket; another host has its own.
    assert drop_reason(adm.admit(initial(), (PEER[0], 5555), NOW)) == "dropped_rate_limited"
    assert isinstance(adm.admit(initial(), OTHER_PEER, NOW), Accept)
    # One token comes back every 1/5 s ...
    assert isinstance(adm.admit(initial(), PEER, NOW + 0.2), Accept)
    assert isinstance(adm.admit(initial(), PEER, NOW + 0.2), Drop)
    # ... up to the burst, however long the source was quiet.
    later = [adm.admit(initial(), PEER, NOW + 60) for _ in range(6)]
    assert [type(v) for v in later] == [Accept] * 5 + [Drop]


def test_a_rate_below_one_a_second_still_admits() -> None:
    # The burst is at least one token: 0.5/s admits one Initial, then one every two seconds.
    adm = admission(initials_per_second=0.5, max_half_open=1000)
    assert isinstance(adm.admit(initial(), PEER, NOW), Accept)
    assert drop_reason(adm.admit(initial(), PEER, NOW + 1.0)) == "dropped_rate_limited"
    assert isinstance(adm.admit(initial(), PEER, NOW + 2.0), Accept)
    assert drop_reason(adm.admit(initial(), PEER, NOW + 2.0)) == "dropped_rate_limited"


def test_rate_limiter_forgets_full_buckets_under_a_flood_of_sources() -> None:
    limiter = InitialRateLimiter(rate=2.0)
    for i in range(MAX_RATE_SOURCES + 10):
        assert limiter.allow(f"198.51.100.{i}", NOW)
    assert len(limiter) == MAX_RATE_SOURCES + 10
    # A second later every bucket is full again: the next new source sweeps them away.
    assert limiter.allow("203.0.113.1", NOW + 1.0)
    assert len(limiter) <= 2
    assert limiter.allow("198.51.100.0", NOW + 1.0)  # a forgotten source starts full


# ---- half-open bound --------------------------------------------------------------------------


def test_half_open_bound() -> None:
    adm = admission(max_half_open=2)
    assert isinstance(adm.admit(initial(), PEER, NOW), Accept)
    adm.half_open = 2  # the owner counts the connections it made
    assert drop_reason(adm.admit(initial(), OTHER_PEER, NOW)) == "dropped_half_open"
    adm.half_open = 1  # one handshake completed or was reaped
    assert isinstance(adm.admit(initial(), OTHER_PEER, NOW), Accept)


# ---- Retry ------------------------------------------------------------------------------------


def come_back(adm: Admission[FakeConn], retry: SendRetry, addr: object, now: float) -> object:
    """The client's second Initial: to the id the Retry gave, with its token."""
    header = parse_header(retry.packet, 8)
    assert header.packet_type is LongPacketType.RETRY
    token = retry.packet[7 + len(header.destination_cid) + len(header.source_cid) : -16]
    return adm.admit(initial(header.source_cid, token=token), addr, now)  # type: ignore[arg-type]


def test_retry_always_then_the_token_is_accepted() -> None:
    adm = admission(retry="always")
    dcid, scid = os.urandom(8), os.urandom(5)
    retry = adm.admit(initial(dcid, scid), PEER, NOW)
    assert isinstance(retry, SendRetry)
    header = parse_header(retry.packet, 8)
    assert header.destination_cid == scid and header.source_cid != dcid
    assert len(adm.routes) == 0 and adm.half_open == 0  # stateless
    verdict = come_back(adm, retry, PEER, NOW + 0.05)
    assert verdict == Accept(original_destination_cid=dcid, retry_source_cid=header.source_cid)


def test_retry_under_load_starts_at_the_threshold() -> None:
    adm = admission(retry="under_load", max_half_open=8)  # threshold: half of max_half_open
    adm.half_open = 3
    assert isinstance(adm.admit(initial(), PEER, NOW), Accept)
    adm.half_open = 4
    retry = adm.admit(initial(), PEER, NOW)
    assert isinstance(retry, SendRetry)
    assert isinstance(come_back(adm, retry, PEER, NOW), Accept)  # validated: no Retry again
    explicit = admission(retry="under_load", retry_threshold=1)
    explicit.half_open = 1
    assert isinstance(explicit.admit(initial(), PEER, NOW), SendRetry)


def test_retry_under_load_answers_a_source_over_its_rate_and_does_not_charge_it_again() -> None:
    adm = admission(retry="under_load", initials_per_second=1.0)
    assert isinstance(adm.admit(initial(), PEER, NOW), Accept)  # the burst of one
    retry = adm.admit(initial(), PEER, NOW)
    assert isinstance(retry, SendRetry)  # not dropped: answered
    # The validated client is accepted although its source has no token left.
    assert isinstance(come_back(adm, retry, PEER, NOW), Accept)
    off = admission(initials_per_second=1.0)
    off.admit(initial(), PEER, NOW)
    assert drop_reason(off.admit(initial(), PEER, NOW)) == "dropped_rate_limited"


def test_validated_clients_are_still_bounded_by_max_half_open() -> None:
    adm = admission(retry="always", max_half_open=2)
    retry = adm.admit(initial(), PEER, NOW)
    assert isinstance(retry, SendRetry)
    adm.half_open = 2
    assert drop_reason(come_back(adm, retry, PEER, NOW)) == "dropped_half_open"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("valid", None),
        ("forged", "forged"),
        ("tampered", "forged"),
        ("expired", "expired"),
        ("other_host", "address"),
        ("other_port", "address"),
        ("other_cid", "connection_id"),
    ],
)
def test_token_validation_outcomes(case: str, expected: str | None) -> None:
    adm = admission(retry="always")
    assert adm.validator is not None
    codec = adm.validator.codec
    odcid, rscid = os.urandom(8), os.urandom(8)
    issued = {
        "valid": (PEER, rscid, NOW),
        "forged": None,
        "tampered": (PEER, rscid, NOW),
        "expired": (PEER, rscid, NOW - codec.lifetime - 1.0),
        "other_host": (OTHER_PEER, rscid, NOW),
        "other_port": ((PEER[0], PEER[1] + 1), rscid, NOW),
        "other_cid": (PEER, os.urandom(8), NOW),
    }[case]
    if issued is None:
        token = os.urandom(60)
    else:
        addr, cid, at = issued
        token = codec.encode(addr, odcid, cid, at)
    if case == "tampered":
        token = token[:-1] + bytes([token[-1] ^ 1])
    data = initial(rscid, token=token)
    assert read_initial_token(data, parse_header(data, 8)) == token
    verdict = adm.admit(data, PEER, NOW)
    if expected is None:
        assert verdict == Accept(original_destination_cid=odcid, retry_source_cid=rscid)
        assert adm.validator.rejected == {}
    else:
        assert drop_reason(verdict) == "dropped_invalid_token"
        assert isinstance(verdict, Drop) and isinstance(verdict.detail, InvalidRetryToken)
        assert verdict.detail.reason == expected
        assert adm.validator.rejected == {expected: 1}


# ---- the routing table ------------------------------------------------------------------------


# ---- the owner's address verdict ----------------------------------------------------------------


class Verdicts:
    """An owner's hook that records what it was asked and refuses the sources in ``deny``."""

    def __init__(self, deny: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.deny = deny
        self.asked: list[object] = []

    def __call__(self, addr: tuple[str, int]) -> str | None:
        self.asked.append(addr)
        return "dropped_gated" if addr[0] in self.deny else None


def test_the_address_verdict_is_asked_last_and_only_for_a_new_connection() -> None:
    hook = Verdicts(deny={OTHER_PEER[0]})
    adm = admission(address_verdict=hook)
    cid = os.urandom(8)
    adm.routes.add(FakeConn(PEER), [cid])
    # Junk, a known id and Initials another rule refuses never reach the hook.
    for data in (b"junk", short_header(os.urandom(8)), short_header(cid), initial(size=1000)):
        adm.admit(data, OTHER_PEER, NOW)
    adm.half_open = 8
    assert drop_reason(adm.admit(initial(), OTHER_PEER, NOW)) == "dropped_half_open"
    assert hook.asked == []
    adm.half_open = 0
    refused = adm.admit(initial(), OTHER_PEER, NOW)
    assert isinstance(refused, Drop) and refused.reason == "dropped_gated"
    assert refused.detail == OTHER_PEER[0]
    assert isinstance(adm.admit(initial(), PEER, NOW), Accept)
    assert hook.asked == [OTHER_PEER, PEER]


def test_with_retry_the_verdict_is_asked_for_the_validated_initial_only() -> None:
    hook = Verdicts(deny={PEER[0]})
    adm = admission(retry="always", address_verdict=hook)
    retry = adm.admit(initial(), PEER, NOW)
    assert isinstance(retry, SendRetry) and hook.asked == []  # a Retry costs no resources
    assert drop_reason(come_back(adm, retry, PEER, NOW + 0.05)) == "dropped_gated"
    assert hook.asked == [PEER]


def test_route_table() -> None:
    table: RouteTable[FakeConn] = RouteTable()
    a, b = FakeConn(PEER), FakeConn(OTHER_PEER)
    assert table.add(a, [b"a1", b"a2", b""]) == 0  # a zero-length id routes nothing
    assert table.add(b, [b"b1", b"a1"]) == 1  # a clash: the first owner keeps it
    assert table.get(b"a1") is a and table.get(b"b1") is b and table.get(b"") is None
    assert len(table) == 3
    assert table.routes_to(a) == {b"a1", b"a2"} and table.routes_to(b) == {b"b1"}
    table.remove(a, b"a2")
    table.remove(b, b"a1")  # not b's: a keeps it
    assert table.routes_to(a) == {b"a1"}
    table.remove_all(a)
    assert table.get(b"a1") is None and table.routes_to(a) == frozenset()
    assert len(table) == 1
