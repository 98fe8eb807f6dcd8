"""Noise XX handshakes between our initiator and responder: the sans-IO ``NoiseHandshake``
(noise.py) and its trio drivers (handshake.py) over in-memory trio streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.rsa import create_new_key_pair as rsa_pair
from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1_pair
from libp2p.crypto.x25519 import X25519PrivateKey
from libp2p.peer.id import ID
from libp2p.security.noise.patterns import PatternXX

from py_libp2p_webtransport import handshake, noise
from py_libp2p_webtransport.errors import (
    CerthashMismatch,
    DialTimeout,
    HandshakeError,
    PeerIdMismatch,
)
from py_libp2p_webtransport.handshake import handshake_inbound, handshake_outbound
from py_libp2p_webtransport.multiaddr import certhash_multihash
from py_libp2p_webtransport.noise import (
    SIGNED_DATA_PREFIX,
    HandshakePayload,
    NoiseHandshake,
    NoiseResult,
)

H1, H2, H3 = (certhash_multihash(bytes([i])) for i in range(3))
_RSA = rsa_pair()  # slow to generate: once per module
KEY_MAKERS: dict[str, Callable[[], KeyPair]] = {
    "ed25519": ed25519_pair,
    "secp256k1": secp256k1_pair,
    "rsa": lambda: _RSA,
}


class StreamAdapter:
    """``read(n)`` / ``write(data)`` over a trio stream (what an IMuxedStream offers)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def read(self, n: int | None = None) -> bytes:
        return await self.stream.receive_some(n)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close(self) -> None:
        await self.stream.aclose()

    def get_remote_address(self) -> None:  # py-libp2p's Noise asks for it
        return None


async def run_pair(
    client_key: KeyPair,
    server_key: KeyPair,
    *,
    dialed: list[bytes],
    offered: list[bytes],
    expected_peer: ID | None = None,
) -> dict[str, Any]:
    """Run both sides; each result is a NoiseResult or the exception that side raised."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    out: dict[str, Any] = {}

    async def client() -> None:
        try:
            out["client"] = await handshake_outbound(
                StreamAdapter(client_stream),
                client_key.private_key,
                dialed_certhashes=dialed,
                expected_peer=expected_peer,
            )
        except Exception as exc:
            out["client"] = exc
            await client_stream.aclose()  # a failed dialer abandons the stream

    async def server() -> None:
        try:
            out["server"] = await handshake_inbound(
                StreamAdapter(server_stream), server_key.private_key, certhashes=offered
            )
        except Exception as exc:
            out["server"] = exc
            await server_stream.aclose()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            nursery.start_soon(server)
    return out


@pytest.mark.parametrize("server_type", sorted(KEY_MAKERS))
@pytest.mark.parametrize("client_type", sorted(KEY_MAKERS))
async def test_handshake_authenticates_both_sides(client_type: str, server_type: str) -> None:
    client_key, server_key = KEY_MAKERS[client_type](), KEY_MAKERS[server_type]()
    server_id = ID.from_pubkey(server_key.public_key)
    out = await run_pair(
        client_key, server_key, dialed=[H2], offered=[H1, H2, H3], expected_peer=server_id
    )
    client_result, server_result = out["client"], out["server"]
    assert isinstance(client_result, NoiseResult), client_result
    assert isinstance(server_result, NoiseResult), server_result
    assert client_result.remote_peer_id == server_id
    assert client_result.remote_public_key == server_key.public_key
    assert client_result.remote_certhashes == (H1, H2, H3)
    assert server_result.remote_peer_id == ID.from_pubkey(client_key.public_key)
    assert server_result.remote_public_key == client_key.public_key
    assert server_result.remote_certhashes == ()


@pytest.mark.parametrize(
    ("dialed", "offered"),
    [([H1, H2], [H1, H2, H3]), ([], [H1]), ([], []), ([H3], [H3])],
    ids=["subset", "nothing-dialed", "nothing-at-all", "equal"],
)
async def test_certhash_subset_accepted(dialed: list[bytes], offered: list[bytes]) -> None:
    out = await run_pair(ed25519_pair(), ed25519_pair(), dialed=dialed, offered=offered)
    assert isinstance(out["client"], NoiseResult)
    assert isinstance(out["server"], NoiseResult)
    assert out["client"].remote_certhashes == tuple(offered)


@pytest.mark.parametrize(
    ("dialed", "offered"),
    [([H1, H2], [H2, H3]), ([H1], []), ([H1, H2], [H1])],
    ids=["one-missing", "empty-server-list", "partial"],
)
async def test_certhash_missing_fails(dialed: list[bytes], offered: list[bytes]) -> None:
    out = await run_pair(ed25519_pair(), ed25519_pair(), dialed=dialed, offered=offered)
    assert isinstance(out["client"], CerthashMismatch)
    # The client never sends message 3; the server sees the stream end mid-handshake.
    assert isinstance(out["server"], HandshakeError)


async def test_wrong_peer_id_fails() -> None:
    other = ID.from_pubkey(ed25519_pair().public_key)
    out = await run_pair(
        ed25519_pair(), ed25519_pair(), dialed=[H1], offered=[H1], expected_peer=other
    )
    assert isinstance(out["client"], PeerIdMismatch)
    assert isinstance(out["server"], HandshakeError)


# --- interop with py-libp2p's own Noise (libp2p.security.noise) -----------------------------


async def test_interop_with_py_libp2p_noise_both_directions() -> None:
    ours, theirs_key = ed25519_pair(), ed25519_pair()
    theirs_id = ID.from_pubkey(theirs_key.public_key)
    pattern = PatternXX(theirs_id, theirs_key.private_key, X25519PrivateKey.new())
    results: dict[str, Any] = {}

    a, b = trio.testing.memory_stream_pair()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:

            async def our_client() -> None:
                results["ours"] = await handshake_outbound(
                    StreamAdapter(a), ours.private_key, expected_peer=theirs_id
                )

            async def their_server() -> None:
                results["theirs"] = await pattern.handshake_inbound(StreamAdapter(b))

            nursery.start_soon(our_client)
            nursery.start_soon(their_server)
    assert results["ours"].remote_peer_id == theirs_id
    assert results["theirs"].remote_peer == ID.from_pubkey(ours.public_key)

    a, b = trio.testing.memory_stream_pair()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:

            async def their_client() -> None:
                sess = await pattern.handshake_outbound(
                    StreamAdapter(a), ID.from_pubkey(ours.public_key)
                )
                results["theirs"] = sess

            async def our_server() -> None:
                results["ours"] = await handshake_inbound(
                    StreamAdapter(b), ours.private_key, certhashes=[H1, H2]
                )

            nursery.start_soon(their_client)
            nursery.start_soon(our_server)
    assert results["ours"].remote_peer_id == theirs_id
    assert results["theirs"].remote_peer == ID.from_pubkey(ours.public_key)


# --- bad messages (sans-IO) -----------------------------------------------------------------


def frame(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


def unframe(data: bytes) -> bytes:
    assert int.from_bytes(data[:2], "big") == len(data) - 2
    return data[2:]


def exchange_to_msg2(
    offered: list[bytes] | None = None,
) -> tuple[NoiseHandshake, NoiseHandshake, bytes]:
    client = NoiseHandshake.initiator(ed25519_pair().private_key)
    server = NoiseHandshake.responder(ed25519_pair().private_key, certhashes=offered or [H1])
    server.receive_data(client.data_to_send())
    return client, server, server.data_to_send()


@pytest.mark.parametrize(
    "msg1",
    [b"", b"\x01" * 5, b"\x00" * 31],
    ids=["empty", "five-bytes", "31-bytes"],
)
def test_responder_rejects_truncated_message_1(msg1: bytes) -> None:
    server = NoiseHandshake.responder(ed25519_pair().private_key)
    with pytest.raises(HandshakeError):
        server.receive_data(frame(msg1))
    with pytest.raises(HandshakeError):  # and stays failed
        server.receive_data(frame(b"\x01" * 32))


def test_initiator_rejects_garbage_message_2() -> None:
    client = NoiseHandshake.initiator(ed25519_pair().private_key)
    client.data_to_send()
    with pytest.raises(HandshakeError):
        client.receive_data(frame(bytes(range(200))))


@pytest.mark.parametrize("position", [0, 40, 100, -1])
def test_initiator_rejects_tampered_message_2(position: int) -> None:
    client, _, msg2 = exchange_to_msg2()
    body = bytearray(unframe(msg2))
    body[position] ^= 0x01
    with pytest.raises(HandshakeError):
        client.receive_data(frame(bytes(body)))


@pytest.mark.parametrize("keep", [10, 90, 120], ids=["tiny", "below-minimum", "short-payload"])
def test_initiator_rejects_truncated_message_2(keep: int) -> None:
    client, _, msg2 = exchange_to_msg2()
    assert len(unframe(msg2)) > keep
    with pytest.raises(HandshakeError):
        client.receive_data(frame(unframe(msg2)[:keep]))
    assert not client.is_complete


def test_responder_rejects_tampered_message_3() -> None:
    client, server, msg2 = exchange_to_msg2()
    client.receive_data(msg2)
    body = bytearray(unframe(client.data_to_send()))
    body[-5] ^= 0x80
    with pytest.raises(HandshakeError):
        server.receive_data(frame(bytes(body)))
    assert not server.is_complete


def test_data_after_last_message_is_rejected() -> None:
    client, server, msg2 = exchange_to_msg2()
    client.receive_data(msg2)
    with pytest.raises(HandshakeError):
        server.receive_data(client.data_to_send() + b"\x00")


def test_split_delivery_byte_by_byte() -> None:
    client, server, msg2 = exchange_to_msg2([H1, H2])
    for i in range(len(msg2)):
        assert client.bytes_needed > 0
        client.receive_data(msg2[i : i + 1])
    msg3 = client.data_to_send()
    assert client.is_complete and client.bytes_needed == 0
    for i in range(len(msg3)):
        server.receive_data(msg3[i : i + 1])
    assert server.is_complete
    assert client.result.remote_certhashes == (H1, H2)


def test_result_before_completion_raises() -> None:
    with pytest.raises(HandshakeError):
        _ = NoiseHandshake.initiator(ed25519_pair().private_key).result


def test_largest_framed_message_2_from_a_peer_is_rejected() -> None:
    """The 2-byte length prefix caps a peer's message at 65535 bytes; one that large (random)
    fails with a HandshakeError and the handshake stays failed."""
    client = NoiseHandshake.initiator(ed25519_pair().private_key)
    client.data_to_send()
    with pytest.raises(HandshakeError):
        client.receive_data(b"\xff\xff" + bytes(range(256)) * 255 + bytes(255))
    with pytest.raises(HandshakeError):
        client.receive_data(b"\x00")


def test_oversized_message_2_is_refused() -> None:
    # 2000 certhashes of 34 bytes cannot fit in one 65535-byte Noise message.
    many = [certhash_multihash(i.to_bytes(4, "big")) for i in range(2000)]
    client = NoiseHandshake.initiator(ed25519_pair().private_key)
    server = NoiseHandshake.responder(ed25519_pair().private_key, certhashes=many)
    with pytest.raises(HandshakeError):
        server.receive_data(client.data_to_send())


class ForgingResponder(NoiseHandshake):
    """A responder whose message-2 payload is replaced (fault injection)."""

    def __init__(self, forge: Callable[[NoiseHandshake], bytes]) -> None:
        super().__init__(ed25519_pair().private_key, is_initiator=False, certhashes=[H1])
        self._forge = forge

    def _payload(self) -> bytes:
        return self._forge(self)


@pytest.mark.parametrize(
    "forge",
    [
        # Signature over the wrong static key.
        lambda hs: HandshakePayload(
            hs._private_key.get_public_key().serialize(),
            hs._private_key.sign(SIGNED_DATA_PREFIX + bytes(32)),
            (H1,),
        ).encode(),
        # Someone else's identity key with our signature (impersonation).
        lambda hs: HandshakePayload(
            ed25519_pair().public_key.serialize(),
            hs._private_key.sign(SIGNED_DATA_PREFIX + hs._static_public),
            (H1,),
        ).encode(),
        # Not a protobuf at all.
        lambda hs: b"\xff\xff\xff",
        # An identity key that is not a libp2p public key.
        lambda hs: HandshakePayload(b"\x08\x63\x12\x01x", b"sig", (H1,)).encode(),
    ],
    ids=["bad-signature", "impersonation", "garbage-payload", "bad-identity-key"],
)
def test_initiator_rejects_bad_payloads(forge: Callable[[NoiseHandshake], bytes]) -> None:
    client = NoiseHandshake.initiator(ed25519_pair().private_key, dialed_certhashes=[H1])
    server = ForgingResponder(forge)
    server.receive_data(client.data_to_send())
    with pytest.raises(HandshakeError):
        client.receive_data(server.data_to_send())
    assert client.data_to_send() == b"", "no message 3 after a failure"


# --- driver: EOF, over-reading, timeouts ----------------------------------------------------


async def test_eof_in_the_middle_of_a_message() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    # Announce a full-size message, send ten bytes of it, then close.
    await client_stream.send_all(b"\xff\xff" + b"\x00" * 10)
    await client_stream.aclose()
    with pytest.raises(HandshakeError):
        await handshake_inbound(StreamAdapter(server_stream), ed25519_pair().private_key)


async def test_driver_does_not_read_past_the_handshake() -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client_key = ed25519_pair()
    client = NoiseHandshake.initiator(client_key.private_key)

    async def client_side() -> None:
        await client_stream.send_all(client.data_to_send())
        while not client.is_complete:
            client.receive_data(await client_stream.receive_some(client.bytes_needed))
        await client_stream.send_all(client.data_to_send() + b"application bytes")

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_side)
            result = await handshake_inbound(
                StreamAdapter(server_stream), ed25519_pair().private_key
            )
    assert result.remote_peer_id == ID.from_pubkey(client_key.public_key)
    assert await server_stream.receive_some(100) == b"application bytes"


async def test_stalled_server_times_out_the_dialer(autojump_clock: trio.testing.MockClock) -> None:
    client_stream, _server_stream = trio.testing.memory_stream_pair()
    start = trio.current_time()
    with pytest.raises(DialTimeout):
        await handshake_outbound(StreamAdapter(client_stream), ed25519_pair().private_key)
    assert trio.current_time() - start == pytest.approx(10.0)  # the default timeout, virtual time


async def test_stalled_client_times_out_the_listener(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _client_stream, server_stream = trio.testing.memory_stream_pair()
    start = trio.current_time()
    with pytest.raises(HandshakeError) as excinfo:
        await handshake_inbound(StreamAdapter(server_stream), ed25519_pair().private_key, timeout=3)
    assert excinfo.type is HandshakeError  # the listener side is not a dial
    assert trio.current_time() - start == pytest.approx(3.0)


async def test_stall_after_message_1_times_out(autojump_clock: trio.testing.MockClock) -> None:
    # The server answers message 1 and then the client goes silent.
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client = NoiseHandshake.initiator(ed25519_pair().private_key)
    await client_stream.send_all(client.data_to_send())
    with pytest.raises(HandshakeError):
        await handshake_inbound(StreamAdapter(server_stream), ed25519_pair().private_key, timeout=5)
    while not client.is_complete:  # message 2 was sent before the stall, and is valid
        client.receive_data(await client_stream.receive_some(client.bytes_needed))


class FailingStream:
    """A stream whose reads fail the way a reset or broken stream does."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.written = b""

    async def read(self, n: int) -> bytes:
        raise self.error

    async def write(self, data: bytes) -> None:
        self.written += data


@pytest.mark.parametrize(
    "error",
    [trio.BrokenResourceError("gone"), trio.ClosedResourceError(), ConnectionResetError()],
    ids=["broken", "closed", "reset"],
)
async def test_stream_failure_becomes_handshake_error(error: Exception) -> None:
    stream = FailingStream(error)
    with pytest.raises(HandshakeError) as excinfo:
        await handshake_outbound(stream, ed25519_pair().private_key, dialed_certhashes=[H1])
    assert excinfo.value.__cause__ is error
    assert stream.written, "message 1 went out before the read failed"


async def test_no_timeout_when_none(autojump_clock: trio.testing.MockClock) -> None:
    _client_stream, server_stream = trio.testing.memory_stream_pair()
    with trio.move_on_after(3600) as scope:
        await handshake_inbound(
            StreamAdapter(server_stream), ed25519_pair().private_key, timeout=None
        )
    assert scope.cancelled_caught, "only the outer hour-long limit ended the wait"


def test_the_drivers_are_still_importable_from_noise() -> None:
    """They moved to handshake.py; code importing them from noise.py keeps working."""
    from py_libp2p_webtransport.noise import HandshakeStream, drive_handshake

    assert noise.handshake_outbound is handshake.handshake_outbound
    assert noise.handshake_inbound is handshake.handshake_inbound
    assert drive_handshake is handshake.drive_handshake
    assert HandshakeStream is handshake.HandshakeStream
    with pytest.raises(AttributeError):
        _ = noise.no_such_name
