"""Batched UDP I/O (`_udp` twins) on real loopback sockets, IPv4 and IPv6."""

from __future__ import annotations

import importlib
import select
import socket
from collections.abc import Iterator
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from py_libp2p_webtransport._compat import NO_EXTENSIONS

C_EXT_MARK = pytest.mark.c_extension

FAMILIES = [
    pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
    pytest.param((socket.AF_INET6, "::1"), id="ipv6"),
]


def _twins() -> list[ModuleType]:
    mods = [importlib.import_module("py_libp2p_webtransport._udp_py")]
    if not NO_EXTENSIONS:
        mods.append(importlib.import_module("py_libp2p_webtransport._udp_c"))
    return mods


def _twin_params() -> list[object]:
    """``_twins()`` as parameters; the compiled one carries ``c_extension`` (deselectable)."""
    return [
        pytest.param(
            m, id=m.IMPLEMENTATION, marks=C_EXT_MARK if m.IMPLEMENTATION == "cython" else ()
        )
        for m in _twins()
    ]


@pytest.fixture(params=FAMILIES)
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sender, receiver): two non-blocking UDP sockets on loopback with 4 MiB buffers."""
    family, host = request.param
    socks = []
    for _ in range(2):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((host, 0))
        socks.append(s)
    yield socks[0], socks[1]
    for s in socks:
        s.close()


def _mixed(n: int) -> list[bytes]:
    """Datagrams of varied sizes, each tagged with its index so order is checkable."""
    sizes = [1200, 1200, 1200, 17, 1452, 1452, 1, 0, 900, 1452, 1452, 1452, 300]
    out = []
    for i in range(n):
        size = sizes[i % len(sizes)]
        tag = i.to_bytes(2, "big")
        out.append((tag + bytes([i % 251]) * size)[: max(size, 2)] if size else b"")
    return out


def _recv_all(mod: ModuleType, sock: socket.socket, expected: int) -> list[tuple[bytes, tuple]]:
    got: list[tuple[bytes, tuple]] = []
    for _ in range(1000):  # bounded: loopback delivery is synchronous, this is a safety net
        batch = mod.recv_batch(sock, 64)
        if not batch:
            break
        got.extend(batch)
        if len(got) >= expected:
            break
    return got


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
def test_mixed_batch_arrives_intact_and_in_order(udp_module, pair, gso) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    dest = receiver.getsockname()
    datagrams = _mixed(300)
    assert udp_module.send_batch(sender, datagrams, dest, gso=gso) == len(datagrams)
    got = _recv_all(udp_module, receiver, len(datagrams))
    assert [d for d, _ in got] == datagrams
    src = sender.getsockname()
    assert {a[:2] for _, a in got} == {src[:2]}
    assert all(len(a) == len(src) for _, a in got)


RUN_SHAPES = {
    "equal-then-empty": [b"a" * 5, b"b" * 5, b""],
    "short-then-empty": [b"a" * 5, b"", b"c" * 5],
    "shorter-last": [b"a" * 100] * 3 + [b"b" * 10, b"c" * 100],
    "longer-after-run": [b"a" * 10] * 3 + [b"b" * 11],
    "segment-limit": [bytes([i]) * 50 for i in range(200)],  # > 64 segments per message
    "byte-limit": [bytes([i]) * 1452 for i in range(100)],  # > 64 KiB per message
    "max-datagram": [b"m" * 65507, b"n" * 65507, b"o"],  # IPv4's largest UDP payload
    "all-empty": [b"", b"", b""],
}


@pytest.mark.parametrize("shape", list(RUN_SHAPES), ids=list(RUN_SHAPES))
@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
def test_segmentation_run_shapes(udp_module, pair, shape, gso) -> None:  # type: ignore[no-untyped-def]
    """Where GSO runs start and end (equal sizes, shorter last, empty, limits) loses nothing."""
    sender, receiver = pair
    datagrams = RUN_SHAPES[shape]
    assert udp_module.send_batch(sender, datagrams, receiver.getsockname(), gso=gso) == len(
        datagrams
    )
    got = _recv_all(udp_module, receiver, len(datagrams))
    assert [d for d, _ in got] == datagrams


@pytest.mark.parametrize("sender_mod", _twin_params())
@pytest.mark.parametrize("receiver_mod", _twin_params())
def test_cross_twin(sender_mod, receiver_mod, pair) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    datagrams = _mixed(130)
    assert sender_mod.send_batch(sender, datagrams, receiver.getsockname()) == len(datagrams)
    got = _recv_all(receiver_mod, receiver, len(datagrams))
    assert [d for d, _ in got] == datagrams
    # Both twins report the sender's address exactly as socket.recvfrom does.
    sender_mod.send_batch(sender, [b"ping"], receiver.getsockname())
    _, addr = receiver.recvfrom(100)
    assert got[0][1] == addr


def test_recv_empty_socket_returns_nothing(udp_module, pair) -> None:  # type: ignore[no-untyped-def]
    _, receiver = pair
    assert udp_module.recv_batch(receiver) == []


def test_recv_respects_max_datagrams(udp_module, pair) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    datagrams = [bytes([i]) * 100 for i in range(10)]
    udp_module.send_batch(sender, datagrams, receiver.getsockname(), gso=False)
    first = udp_module.recv_batch(receiver, 3)
    rest = udp_module.recv_batch(receiver, 64)
    assert [d for d, _ in first] == datagrams[:3]
    assert [d for d, _ in rest] == datagrams[3:]


def test_recv_by_fileno_and_truncation(udp_module, pair) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    udp_module.send_batch(sender.fileno(), [b"abcdefgh"], receiver.getsockname())
    got = udp_module.recv_batch(receiver.fileno(), 8, bufsize=4)
    assert [d for d, _ in got] == [b"abcd"]  # like recvfrom: a short buffer truncates


@pytest.mark.skipif(not hasattr(socket, "CMSG_SPACE"), reason="no ancillary data")
@pytest.mark.parametrize("sender_mod", _twin_params())
def test_gro_buffers_are_split(udp_module, sender_mod, pair) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    if not udp_module.enable_gro(receiver):
        pytest.skip("kernel without UDP GRO")
    datagrams = [bytes([i]) * 1200 for i in range(40)] + [b"tail" * 10]
    assert sender_mod.send_batch(sender, datagrams, receiver.getsockname()) == len(datagrams)
    got = _recv_all(udp_module, receiver, len(datagrams))
    assert [d for d, _ in got] == datagrams


@pytest.mark.c_extension
def test_gso_coalesces_on_the_wire(pair) -> None:  # type: ignore[no-untyped-def]
    """The compiled twin's GSO path really hands the kernel one segmented message.

    Seen from a GRO receiver reading one buffer at a time: a GSO send arrives as one coalesced
    read; without GSO (the fallback path) each read holds one datagram.
    """
    if NO_EXTENSIONS:  # only without --no-c-extensions, which deselects this test
        pytest.skip("compiled twin not built")
    c = importlib.import_module("py_libp2p_webtransport._udp_c")
    sender, receiver = pair
    if not (c.gso_supported(sender) and c.enable_gro(receiver)):
        pytest.skip("kernel without UDP GSO/GRO")
    datagrams = [bytes([i]) * 1000 for i in range(20)] + [b"short"]
    assert c.send_batch(sender, datagrams, receiver.getsockname(), gso=True) == 21
    assert [d for d, _ in c.recv_batch(receiver, 1)] == datagrams
    assert c.send_batch(sender, datagrams, receiver.getsockname(), gso=False) == 21
    assert [d for d, _ in c.recv_batch(receiver, 1)] == datagrams[:1]
    assert [d for d, _ in _recv_all(c, receiver, 20)] == datagrams[1:]


def test_gso_supported_reports_kernel(udp_module, pair) -> None:  # type: ignore[no-untyped-def]
    sender, _ = pair
    try:
        sender.getsockopt(17, 103)  # SOL_UDP, UDP_SEGMENT
        expected = True
    except OSError:
        expected = False
    assert udp_module.gso_supported(sender) is expected


def test_ipv4_literal_on_dual_stack_socket(udp_module) -> None:  # type: ignore[no-untyped-def]
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    v6.setblocking(False)
    v6.bind(("::", 0))
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v4.setblocking(False)
    v4.bind(("127.0.0.1", 0))
    try:
        assert udp_module.send_batch(v6, [b"mapped"], v4.getsockname()) == 1
        got = _recv_all(udp_module, v4, 1)
        assert [d for d, _ in got] == [b"mapped"]
        # The reply comes back v4-mapped on the dual-stack socket.
        udp_module.send_batch(v4, [b"back"], ("127.0.0.1", v6.getsockname()[1]))
        ((data, addr),) = _recv_all(udp_module, v6, 1)
        assert data == b"back" and addr[0] == "::ffff:127.0.0.1"
    finally:
        v6.close()
        v4.close()


@pytest.mark.parametrize(
    "addr",
    [
        ("localhost", 1),  # names are never resolved
        ("127.0.0.1",),
        ("127.0.0.1", 70000),
        ("127.0.0.1", "80"),
        ("1.2.3.4.5", 9),
        ("127.0.0.1", 9, 0, 0),
        ("fe80::1%lo", 9),
        ["127.0.0.1", 9],
        ("127.0.0\x00.1", 9),
        ("ünïcode", 9),
    ],
)
def test_bad_address_is_rejected(udp_module, addr) -> None:  # type: ignore[no-untyped-def]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError):
            udp_module.send_batch(s, [b"x"], addr)
    finally:
        s.close()


@pytest.mark.parametrize(
    "addr",
    [
        ("::1", 9, -1, 0),
        ("::1", 9, 1 << 20, 0),
        ("::1", 9, 0, 1 << 32),
        ("::1", 9, 0, -1),
        ("::1", 9, "0", 0),
        ("::1", 9, 0, None),
    ],
)
def test_bad_ipv6_flowinfo_or_scope(udp_module, addr) -> None:  # type: ignore[no-untyped-def]
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ValueError):
            udp_module.send_batch(s, [b"x"], addr)
    finally:
        s.close()


def test_ipv6_four_tuple_is_used(udp_module) -> None:  # type: ignore[no-untyped-def]
    r = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    r.bind(("::1", 0))
    r.setblocking(False)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        host, port = r.getsockname()[:2]
        assert udp_module.send_batch(s, [b"four"], (host, port, 0, 0)) == 1
        assert [d for d, _ in _recv_all(udp_module, r, 1)] == [b"four"]
    finally:
        r.close()
        s.close()


def test_ipv6_address_on_ipv4_socket(udp_module) -> None:  # type: ignore[no-untyped-def]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(OSError):
            udp_module.send_batch(s, [b"x"], ("::1", 9))
    finally:
        s.close()


@pytest.mark.parametrize("bad", [[b"ok", 5], [b"ok", "text"], [None]])
def test_non_bytes_datagram_rejected_before_sending(udp_module, pair, bad) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    with pytest.raises(TypeError):
        udp_module.send_batch(sender, bad, receiver.getsockname())
    assert udp_module.recv_batch(receiver) == []  # nothing went out, not even the good one


def test_bytes_like_datagrams(udp_module, pair) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    datagrams = [bytearray(b"ba"), memoryview(b"mv"), b"b"]
    assert udp_module.send_batch(sender, datagrams, receiver.getsockname()) == 3
    assert [d for d, _ in _recv_all(udp_module, receiver, 3)] == [b"ba", b"mv", b"b"]


def test_empty_send(udp_module, pair) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = pair
    assert udp_module.send_batch(sender, [], receiver.getsockname()) == 0


@pytest.mark.parametrize("kwargs", [{"max_datagrams": 0}, {"bufsize": 0}, {"bufsize": 1 << 21}])
def test_bad_recv_arguments(udp_module, pair, kwargs) -> None:  # type: ignore[no-untyped-def]
    _, receiver = pair
    with pytest.raises(ValueError):
        udp_module.recv_batch(receiver, **kwargs)


@pytest.mark.parametrize("bad", [object(), -1, "3"])
def test_bad_socket_argument(udp_module, bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((TypeError, ValueError)):
        udp_module.recv_batch(bad)


def test_closed_socket_raises_oserror(udp_module) -> None:  # type: ignore[no-untyped-def]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fd = s.fileno()
    s.close()
    with pytest.raises(OSError):
        udp_module.recv_batch(fd)


def test_would_block_returns_count_and_drops_nothing(udp_module) -> None:  # type: ignore[no-untyped-def]
    """A full kernel send buffer stops the batch; the count says exactly what went out.

    Loopback UDP never pushes back (the receiver drops instead), so this uses a TCP connection
    whose peer does not read: the kernel then answers EAGAIN on the same send path. Datagrams
    are one byte each, so a send is all or nothing and the byte stream shows what was sent.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender.setblocking(False)
    peer.setblocking(False)
    dest = ("127.0.0.1", 9)  # ignored by a connected TCP socket
    try:
        payload = [bytes([i % 256]) for i in range(200_000)]
        sent = 0
        partial_seen = False
        for _ in range(200):  # bounded
            n = udp_module.send_batch(sender, payload[sent : sent + 5000], dest, gso=False)
            assert 0 <= n <= 5000
            sent += n
            if n < 5000:
                partial_seen = True
                break
        assert partial_seen, "the send buffer never filled"
        received = bytearray()
        # Drain, then send the rest: nothing lost, nothing duplicated, order kept.
        for _ in range(10_000):  # bounded; each round waits at most 0.5 s for the peer
            if sent < len(payload):
                sent += udp_module.send_batch(sender, payload[sent:], dest, gso=False)
            if len(received) == len(payload):
                break
            readable, _, _ = select.select([peer], [], [], 0.5)
            if readable:
                received += peer.recv(1 << 16)
        assert sent == len(payload)
        assert bytes(received) == b"".join(payload)
    finally:
        for s in (sender, peer, listener):
            s.close()


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(
        st.one_of(st.integers(0, 40), st.sampled_from([0, 1, 1200, 1452, 1500, 9000])),
        max_size=150,
    ),
    gso=st.booleans(),
    v6=st.booleans(),
)
def test_any_batch_round_trips_across_twins(sizes: list[int], gso: bool, v6: bool) -> None:
    """Any mix of sizes, sent by either twin, arrives intact and in order at the other."""
    family, host = (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
    twins = _twins()
    datagrams = [bytes([i % 256]) * n for i, n in enumerate(sizes)]
    for sender_mod in twins:
        for receiver_mod in twins:
            socks = []
            for _ in range(2):
                s = socket.socket(family, socket.SOCK_DGRAM)
                s.setblocking(False)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                s.bind((host, 0))
                socks.append(s)
            sender, receiver = socks
            try:
                receiver_mod.enable_gro(receiver)
                dest = receiver.getsockname()
                assert sender_mod.send_batch(sender, datagrams, dest, gso=gso) == len(datagrams)
                got = _recv_all(receiver_mod, receiver, len(datagrams))
                assert [d for d, _ in got] == datagrams
            finally:
                for s in socks:
                    s.close()
