"""``WebTransportConfig.engine_config``: the one mapping from the transport's knobs to the engine's,
with one default per knob (the engine's)."""

from __future__ import annotations

import dataclasses

from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.engine.base import EngineConfig
from py_libp2p_webtransport.session.config import H3Config

MiB = 1024 * 1024
# The knobs a user sets on WebTransportConfig that end up in EngineConfig under the same name.
ENGINE_KNOBS = {
    "max_data",
    "max_stream_data",
    "max_streams_bidi",
    "idle_timeout",
    "keepalive_interval",
    "max_datagram_size",
    "pacing",
    "recv_budget",
    "qlog_dir",  # or QLOGDIR (tests/observability)
    "keylog_file",  # or SSLKEYLOGFILE
}


def defaults(cls: type) -> dict[str, object]:
    return {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }


def test_engine_knobs_are_exactly_the_shared_field_names() -> None:
    shared = {f.name for f in dataclasses.fields(WebTransportConfig)} & {
        f.name for f in dataclasses.fields(EngineConfig)
    }
    assert shared == ENGINE_KNOBS


def test_one_default_per_knob() -> None:
    ours, engine = defaults(WebTransportConfig), defaults(EngineConfig)
    assert {knob: ours[knob] for knob in ENGINE_KNOBS} == {
        knob: engine[knob] for knob in ENGINE_KNOBS
    }
    assert ours["stall_timeout"] == defaults(H3Config)["stall_timeout"]
    assert WebTransportConfig().engine_config(is_client=True) == EngineConfig(
        is_client=True, server_name=None
    )


def test_every_knob_is_mapped() -> None:
    config = WebTransportConfig(
        max_data=3 * MiB,
        max_stream_data=MiB,
        max_streams_bidi=7,
        idle_timeout=12.5,
        keepalive_interval=4.0,
        max_datagram_size=1300,
        pacing=False,
        recv_budget=2 * MiB,
        qlog_dir="qlogs",
        keylog_file="keys.log",
    )
    engine = config.engine_config(is_client=True, server_name="example.org")
    assert {knob: getattr(engine, knob) for knob in ENGINE_KNOBS} == {
        knob: getattr(config, knob) for knob in ENGINE_KNOBS
    }
    assert engine.is_client and engine.server_name == "example.org"
    assert engine.alpn_protocols == ("h3",) and not engine.verify_peer  # certhash pinned above
    assert engine.certificate_der is None and engine.private_key_der is None


def test_server_gets_its_certificate_and_the_budget_never_exceeds_the_window() -> None:
    config = WebTransportConfig(recv_budget=8 * MiB, max_data=MiB)
    engine = config.engine_config(is_client=False, certificate=(b"cert", b"key"))
    assert (engine.certificate_der, engine.private_key_der) == (b"cert", b"key")
    assert not engine.is_client and engine.recv_budget == MiB


def test_session_config_carries_the_stall_timeout() -> None:
    assert WebTransportConfig(stall_timeout=2.0).session_config().stall_timeout == 2.0
