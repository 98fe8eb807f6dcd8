"""Building stateless resets (``endpoint/stateless_reset.py``, ``engine/reset_token.py``) on their
own: datagrams in, resets out, a fake clock; no socket, no engine."""

from __future__ import annotations

import os

import pytest

from py_libp2p_webtransport.endpoint.admission import HOST_CID_LENGTH
from py_libp2p_webtransport.endpoint.options import EndpointOptions
from py_libp2p_webtransport.endpoint.stateless_reset import (
    MAX_RESET_SIZE,
    StatelessResetter,
    build_reset,
    reset_size,
)
from py_libp2p_webtransport.engine.reset_token import (
    MIN_RESET_SIZE,
    TOKEN_LENGTH,
    derive_reset_secret,
    is_stateless_reset,
    reset_token,
)

SECRET = derive_reset_secret(b"the host's private key bytes")
CID = bytes.fromhex("0123456789abcdef")
NOW = 1000.0


def short_header(size: int, cid: bytes = CID) -> bytes:
    """A short-header datagram of ``size`` bytes to ``cid`` (its body is random)."""
    return bytes([0x40 | 0x01]) + cid + os.urandom(size - 1 - len(cid))


def test_the_secret_and_tokens_are_pure_functions_of_key_and_id() -> None:
    assert derive_reset_secret(b"the host's private key bytes") == SECRET
    assert derive_reset_secret(b"another key") != SECRET
    token = reset_token(SECRET, CID)
    assert len(token) == TOKEN_LENGTH and token == reset_token(SECRET, CID)
    assert reset_token(SECRET, bytes(8)) != token
    assert reset_token(derive_reset_secret(b"another key"), CID) != token
    # Two resetters with the same secret (a node and the same node restarted) agree.
    assert StatelessResetter(SECRET).token(CID) == StatelessResetter(SECRET).token(CID) == token


def test_empty_key_and_short_secret_are_refused() -> None:
    with pytest.raises(ValueError, match="empty key material"):
        derive_reset_secret(b"")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        StatelessResetter(b"short")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        EndpointOptions(stateless_reset_secret=b"short")


@pytest.mark.parametrize("size", [22, 23, 30, 43, 44, 45, 60, 100, 1200, 1452])
def test_the_reset_is_smaller_than_its_trigger_and_carries_the_ids_token(size: int) -> None:
    resetter = StatelessResetter(SECRET)
    for i in range(20):  # sizes above 43 are random: look at several
        reset = resetter.respond(short_header(size), NOW + i)
        assert reset is not None
        assert MIN_RESET_SIZE <= len(reset) < size
        assert len(reset) <= MAX_RESET_SIZE
        if size <= 43:
            assert len(reset) == size - 1  # RFC 9000 §10.3: one byte shorter
        else:
            assert len(reset) >= 42
        assert reset[0] & 0xC0 == 0x40  # short header, fixed bit set
        assert reset.endswith(reset_token(SECRET, CID))
        assert is_stateless_reset(reset, [reset_token(SECRET, CID)])


def test_resets_look_random() -> None:
    resetter = StatelessResetter(SECRET)
    trigger = short_header(1200)
    resets = [resetter.respond(trigger, NOW + i) for i in range(30)]
    bodies = {r[:-TOKEN_LENGTH] for r in resets if r is not None}
    assert len(bodies) == 30  # no two alike
    assert len({len(r) for r in resets if r is not None}) > 1  # nor all one size
    first_bits = {r[0] & 0x3F for r in resets if r is not None}
    assert len(first_bits) > 1  # the unprotected bits of the first byte vary too


@pytest.mark.parametrize("size", [0, 1, 5, 9, 20, 21])
def test_no_reset_for_a_datagram_too_small_to_answer_with_a_smaller_one(size: int) -> None:
    datagram = short_header(size) if size >= 1 + HOST_CID_LENGTH else bytes([0x40] * size)
    assert StatelessResetter(SECRET).respond(datagram, NOW) is None


def test_no_reset_for_a_long_header() -> None:
    long_header = bytes([0xC0]) + bytes(4) + bytes([8]) + CID + os.urandom(100)
    assert StatelessResetter(SECRET).respond(long_header, NOW) is None


def test_resets_answering_resets_end_after_a_few_rounds() -> None:
    """Two endpoints that each take the other's reset for a packet of an unknown connection
    (both restarted, or a reset reflected back) cannot loop: every answer is smaller (§10.3.3)."""
    ours = StatelessResetter(SECRET)
    theirs = StatelessResetter(derive_reset_secret(b"the other node's key"))
    datagram: bytes | None = short_header(1452)
    sizes = []
    for round_ in range(100):
        assert datagram is not None
        sizes.append(len(datagram))
        datagram = (ours if round_ % 2 else theirs).respond(datagram, NOW + round_)
        if datagram is None:
            break
    assert datagram is None, f"still answering after 100 rounds: {sizes}"
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert sizes[-1] <= 43


def test_resets_are_rate_limited() -> None:
    resetter = StatelessResetter(SECRET, rate=3.0)
    answered = [resetter.respond(short_header(100), NOW) is not None for _ in range(10)]
    assert answered == [True] * 3 + [False] * 7
    # One second later the bucket holds three tokens again.
    answered = [resetter.respond(short_header(100), NOW + 1.0) is not None for _ in range(5)]
    assert answered == [True] * 3 + [False] * 2


def test_recognising_a_reset() -> None:
    token = reset_token(SECRET, CID)
    reset = build_reset(token, 30)
    assert is_stateless_reset(reset, [os.urandom(16), token])
    assert not is_stateless_reset(reset, [os.urandom(16)])
    assert not is_stateless_reset(reset, [])
    assert not is_stateless_reset(bytes([0xC0]) + reset[1:], [token])  # long header
    assert not is_stateless_reset(reset[-20:], [token])  # under 21 bytes


def test_build_reset_refuses_a_size_under_the_minimum() -> None:
    with pytest.raises(ValueError, match="at least 21 bytes"):
        build_reset(bytes(16), 20)
    assert reset_size(22) == 21 and reset_size(43) == 42
    assert all(42 <= reset_size(1000) <= MAX_RESET_SIZE for _ in range(50))
