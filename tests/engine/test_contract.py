"""Both adapters implement exactly ``QuicEngine``: every member with its signature, nothing public
besides, and every member of the contract is documented in ``engine/base.py``."""

from __future__ import annotations

import importlib
import inspect

import pytest

from py_libp2p_webtransport.engine import EngineConfig, create_engine
from py_libp2p_webtransport.engine.base import QuicEngine

ADAPTERS = {
    "qh3": ("py_libp2p_webtransport.engine.qh3", "Qh3Engine"),
    "aioquic": ("py_libp2p_webtransport.engine.aioquic", "AioquicEngine"),
}
ATTRIBUTES = set(QuicEngine.__annotations__)  # plain attributes (``name``)
MEMBERS = ATTRIBUTES | {
    name for name in vars(QuicEngine) if not name.startswith("_") and name not in ATTRIBUTES
}


def adapter_class(engine: str) -> type:
    module, name = ADAPTERS[engine]
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_contract_is_what_the_endpoint_and_session_use() -> None:
    # A change here is a change of the contract: both adapters and base.py move together.
    assert MEMBERS == {
        "name",
        "connect",
        "receive_datagram",
        "receive_datagrams",
        "handle_timer",
        "datagrams_to_send",
        "get_timer",
        "next_event",
        "get_next_available_stream_id",
        "send_stream_data",
        "reset_stream",
        "stop_stream",
        "send_buffer_size",
        "consume",
        "unread_bytes",
        "unread_streams",
        "receive_paused",
        "send_datagram",
        "close",
        "host_connection_ids",
        "original_destination_connection_id",
        "peer_certificate_der",
        "stats",
    }


@pytest.mark.parametrize("member", sorted(MEMBERS - ATTRIBUTES))
def test_every_contract_member_is_documented(member: str) -> None:
    assert inspect.getdoc(getattr(QuicEngine, member)), f"QuicEngine.{member} has no docstring"


@pytest.mark.parametrize("engine", sorted(ADAPTERS))
def test_adapter_has_exactly_the_contract_members(engine: str) -> None:
    assert public_names(adapter_class(engine)) == MEMBERS


@pytest.mark.parametrize("engine", sorted(ADAPTERS))
@pytest.mark.parametrize("member", sorted(MEMBERS - ATTRIBUTES))
def test_adapter_member_matches_the_contract(engine: str, member: str) -> None:
    expected = inspect.getattr_static(QuicEngine, member)
    actual = inspect.getattr_static(adapter_class(engine), member)
    if isinstance(expected, property):
        assert isinstance(actual, property), f"{member} must be a property"
        return
    assert callable(actual)
    want = inspect.signature(expected).parameters
    got = inspect.signature(actual).parameters
    # Keyword-callable the same way: same names, kinds and defaults, in the same order.
    assert [(p.name, p.kind, p.default) for p in got.values()] == [
        (p.name, p.kind, p.default) for p in want.values()
    ]


@pytest.mark.parametrize("engine", sorted(ADAPTERS))
def test_adapter_instances_expose_nothing_else(engine: str) -> None:
    quic = create_engine(engine, EngineConfig(is_client=True))
    assert quic.name == engine
    assert [name for name in vars(quic) if not name.startswith("_")] == []
    assert isinstance(quic.receive_paused, bool) and quic.unread_streams() == {}
