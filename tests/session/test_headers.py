"""QPACK header blocks and extended-CONNECT validation (checklist §D 20-22, §E 27-29)."""

from __future__ import annotations

import pylsqpack
import pytest

from py_libp2p_webtransport.constants import H3ErrorCode
from py_libp2p_webtransport.errors import MessageError, RemoteProtocolError
from py_libp2p_webtransport.session import H3Config
from py_libp2p_webtransport.session.headers import (
    HeaderCodec,
    build_request,
    build_response,
    parse_request,
    parse_response,
    request_status,
)

CHROMIUM_CONNECT = [
    (b":method", b"CONNECT"),
    (b":scheme", b"https"),
    (b":authority", b"127.0.0.1:4001"),
    (b":path", b"/.well-known/libp2p-webtransport?type=noise"),
    (b":protocol", b"webtransport"),
    (b"sec-webtransport-http3-draft02", b"1"),
    (b"origin", b"http://localhost:3000"),
    (b"user-agent", b"Mozilla/5.0"),
]


def test_build_request_draft02_like_chromium() -> None:
    headers = build_request("h:1", "/p?type=noise", "webtransport", "https://o.example")
    assert headers == [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"h:1"),
        (b":path", b"/p?type=noise"),
        (b":protocol", b"webtransport"),
        (b"sec-webtransport-http3-draft02", b"1"),
        (b"origin", b"https://o.example"),
    ]


def test_build_request_draft15_has_no_draft02_header() -> None:
    headers = build_request("h:1", "/p", "webtransport-h3", None)
    assert (b":protocol", b"webtransport-h3") in headers
    assert all(name not in (b"sec-webtransport-http3-draft02", b"origin") for name, _ in headers)


def test_parse_chromium_request() -> None:
    req = parse_request(CHROMIUM_CONNECT)
    assert (req.method, req.protocol, req.scheme) == ("CONNECT", "webtransport", "https")
    assert req.authority == "127.0.0.1:4001"
    assert req.path == "/.well-known/libp2p-webtransport?type=noise"
    assert req.origin == "http://localhost:3000"
    assert req.headers == tuple(CHROMIUM_CONNECT)


def _without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in CHROMIUM_CONNECT if n != name]


@pytest.mark.parametrize(
    "headers",
    [
        _without(b":method"),
        _without(b":scheme"),
        _without(b":authority"),
        _without(b":path"),
        [(b":Method", b"CONNECT"), *_without(b":method")],  # upper case name
        [*CHROMIUM_CONNECT, (b":path", b"/again")],  # pseudo after regular + duplicate
        [(b":path", b"/x"), *CHROMIUM_CONNECT],  # duplicate pseudo-header
        [(b":status", b"200"), *CHROMIUM_CONNECT],  # response pseudo in a request
        [(b":method", b"GET"), *_without(b":method")],  # :protocol on a non-CONNECT
        [(n, b"caf\xc3\xa9" if n == b":authority" else v) for n, v in CHROMIUM_CONNECT],
    ],
)
def test_malformed_requests(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MessageError) as info:
        parse_request(headers)
    assert info.value.error_code == H3ErrorCode.H3_MESSAGE_ERROR


@pytest.mark.parametrize(
    ("method", "protocol", "path", "status"),
    [
        ("CONNECT", "webtransport", "/.well-known/libp2p-webtransport?type=noise", 200),
        ("CONNECT", "webtransport-h3", "/.well-known/libp2p-webtransport?type=noise", 200),
        ("CONNECT", "webtransport", "/other?type=noise", 404),
        ("CONNECT", "webtransport", "/.well-known/libp2p-webtransport/?type=noise", 404),
        ("CONNECT", "webtransport", "/.well-known/libp2p-webtransport", 400),
        ("CONNECT", "webtransport", "/.well-known/libp2p-webtransport?", 400),
        ("CONNECT", "webtransport", "/.well-known/libp2p-webtransport?type=tls", 400),
        ("CONNECT", "webtransport", "/.well-known/libp2p-webtransport?type=noise&x=1", 400),
        ("CONNECT", "websocket", "/.well-known/libp2p-webtransport?type=noise", 501),
        ("CONNECT", None, "/.well-known/libp2p-webtransport?type=noise", 501),
        ("GET", None, "/.well-known/libp2p-webtransport?type=noise", 405),
    ],
)
def test_request_status(method: str, protocol: str | None, path: str, status: int) -> None:
    headers = [
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", b"a"),
        (b":path", path.encode()),
    ]
    if protocol is not None:
        headers.append((b":protocol", protocol.encode()))
    assert request_status(parse_request(headers), H3Config()) == status


def test_request_status_configurable_path_and_any_query() -> None:
    cfg = H3Config(path="/wt", required_query=None)
    ok = parse_request(build_request("a", "/wt?anything", "webtransport-h3", None))
    assert request_status(ok, cfg) == 200
    other = parse_request(
        build_request("a", "/.well-known/libp2p-webtransport", "webtransport", None)
    )
    assert request_status(other, cfg) == 404


def test_origin_is_not_checked() -> None:
    headers = [(n, b"https://evil.example" if n == b"origin" else v) for n, v in CHROMIUM_CONNECT]
    assert request_status(parse_request(headers), H3Config()) == 200


def test_response_round_trip_and_errors() -> None:
    assert parse_response(build_response(404)) == 404
    assert parse_response([(b":status", b"200"), (b"server", b"x")]) == 200
    for bad in (
        [],
        [(b":status", b"20")],
        [(b":status", b"abc")],
        [(b":status", b"200"), (b":path", b"/")],
        [(b"server", b"x")],
    ):
        with pytest.raises(MessageError):
            parse_response(bad)


def test_codec_blocks_decode_with_a_static_only_decoder() -> None:
    # A decoder with dynamic-table capacity 0 (what we advertise) must decode our blocks:
    # our encoder never references the dynamic table and emits no encoder-stream bytes.
    codec = HeaderCodec()
    peer = pylsqpack.Decoder(0, 0)
    for stream_id in (0, 4, 8):
        block = codec.encode(stream_id, CHROMIUM_CONNECT)
        control, headers = peer.feed_header(stream_id, block)
        assert headers == CHROMIUM_CONNECT


def test_codec_decodes_a_peer_block() -> None:
    peer = pylsqpack.Encoder()
    _, block = peer.encode(0, CHROMIUM_CONNECT)
    _, headers = HeaderCodec().decode(0, block)
    assert headers == CHROMIUM_CONNECT


def test_codec_rejects_garbage_and_dynamic_references() -> None:
    codec = HeaderCodec()
    with pytest.raises(RemoteProtocolError) as info:
        codec.decode(0, b"\x00\x00\xff\xff\xff")
    assert info.value.error_code == H3ErrorCode.QPACK_DECOMPRESSION_FAILED
    # Required Insert Count 1: references a dynamic table we never allowed.
    with pytest.raises(RemoteProtocolError):
        codec.decode(4, b"\x02\x00\x80")


def test_connections_share_the_codecs_and_a_bad_block_spoils_nothing() -> None:
    """The codecs are stateless at capacity 0, so connections share them: a peer's
    undecodable block on one connection leaves every other connection's decoding intact."""
    first, second = HeaderCodec(), HeaderCodec()
    assert first._decoder is second._decoder and first._encoder is second._encoder
    peer = pylsqpack.Encoder()
    _, block = peer.encode(0, CHROMIUM_CONNECT)
    for bad in (b"\x02\x00\x80", b"\x00\x00\xff\xff\xff", block[:-3]):
        with pytest.raises(RemoteProtocolError):
            first.decode(0, bad)
        # The same stream id on the other connection, and the one that failed, still decode.
        assert second.decode(0, block) == (b"", CHROMIUM_CONNECT)
        assert first.decode(0, block) == (b"", CHROMIUM_CONNECT)
