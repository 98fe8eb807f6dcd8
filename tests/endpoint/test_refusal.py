"""The stateless refusal (``endpoint/refusal.py``): an Initial built without any TLS state that
each engine's client takes as CONNECTION_CLOSE(CONNECTION_REFUSED) at once."""

from __future__ import annotations

import pytest

from py_libp2p_webtransport.endpoint.admission import HOST_CID_LENGTH
from py_libp2p_webtransport.endpoint.quic_header import parse_header
from py_libp2p_webtransport.endpoint.refusal import (
    CONNECTION_REFUSED,
    Refuser,
    encode_varint_2,
    initial_keys,
    refusal_packet,
)
from py_libp2p_webtransport.engine import ConnectionTerminated, EngineConfig, create_engine

SERVER = ("127.0.0.1", 4433)


def test_initial_keys_are_rfc_9001s() -> None:
    """RFC 9001 Appendix A.1: the keys of the client DCID 0x8394c8f03e515708."""
    dcid = bytes.fromhex("8394c8f03e515708")
    key, iv, hp = initial_keys(dcid, server=False)
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2"
    key, iv, hp = initial_keys(dcid, server=True)
    assert key.hex() == "cf3a5331653c364c88f0f379b6067e37"
    assert iv.hex() == "0ac1493ca1905853b0bba03e"
    assert hp.hex() == "c206b8d9b9f0f37644430b490eeaa314"


def test_each_client_takes_it_as_connection_refused(engine: str) -> None:
    client = create_engine(engine, EngineConfig(is_client=True))
    client.connect(SERVER, 1.0)
    (first, _), *_ = client.datagrams_to_send(1.0)
    header = parse_header(first, HOST_CID_LENGTH)
    packet = Refuser().respond(header, len(first), 1.0, "address denied")
    assert packet is not None and len(packet) < len(first)
    client.receive_datagrams([packet], SERVER, 1.0)
    events = []
    # The close ends the connection after its draining period (timers, virtual time).
    for _ in range(20):
        while (event := client.next_event()) is not None:
            events.append(event)
        if any(isinstance(e, ConnectionTerminated) for e in events):
            break
        timer = client.get_timer()
        assert timer is not None and timer < 1.0 + 3.0, "no close within the draining period"
        client.handle_timer(timer)
    (terminated,) = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert terminated.error_code == CONNECTION_REFUSED and terminated.remote


def test_refusals_are_rate_limited_and_never_larger_than_the_trigger() -> None:
    client = create_engine("aioquic", EngineConfig(is_client=True))
    client.connect(SERVER, 1.0)
    (first, _), *_ = client.datagrams_to_send(1.0)
    header = parse_header(first, HOST_CID_LENGTH)
    refuser = Refuser(rate=2.0)
    answers = [refuser.respond(header, len(first), 5.0, "busy") for _ in range(4)]
    assert [a is not None for a in answers] == [True, True, False, False]
    assert refuser.respond(header, len(refusal_packet(header, "busy")), 9.0, "busy") is None


def test_length_field_bounds() -> None:
    assert encode_varint_2(0x3FFF) == b"\x7f\xff"
    with pytest.raises(ValueError, match="2-byte varint"):
        encode_varint_2(0x4000)
