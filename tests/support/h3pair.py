"""In-memory session pairs over real QUIC engines: datagrams go straight from one engine to the
other, the clock is fake (starts at 0 and only moves when a test or an engine timer moves it).

A side is either a ``WebTransportH3`` (its session events are collected) or a *raw* HTTP/3 peer
(a bare engine the test drives byte by byte, its engine events are collected), so tests can act
as Chromium, webtransport-go or a broken peer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pylsqpack
import pytest

from py_libp2p_webtransport.certs import ephemeral_certificate
from py_libp2p_webtransport.engine import base as eng
from py_libp2p_webtransport.engine import create_engine
from py_libp2p_webtransport.errors import EngineError
from py_libp2p_webtransport.session import H3Config, StreamDataReceived, WebTransportH3

CLIENT_ADDR = ("127.0.0.1", 40001)
SERVER_ADDR = ("127.0.0.1", 40002)


def _certificate() -> tuple[bytes, bytes]:
    """A throwaway certificate in the libp2p shape and its PKCS#8 key, both DER."""
    cert = ephemeral_certificate()
    return cert.der, cert.key_der


CERT = _certificate()


def _create_engine(name: str, config: eng.EngineConfig, odcid: bytes | None) -> eng.QuicEngine:
    """A real engine of kind ``name``; skips the test when that engine is not available."""
    try:
        return create_engine(name, config, original_destination_connection_id=odcid)
    except EngineError as exc:
        pytest.skip(f"engine {name} unavailable: {exc}")


def initial_dcid(datagram: bytes) -> bytes:
    """The destination connection id of a long-header packet (RFC 9000 §17.2)."""
    assert datagram[0] & 0x80, "expected a long header packet"
    return datagram[6 : 6 + datagram[5]]


@dataclass
class Side:
    """One end of a pair: the engine, maybe our H3 layer, and what came out of it.

    A server side gets its engine (and H3 layer) from the client's first Initial, as the
    endpoint does. Payload delivered to the side is consumed at once, as an eager reader,
    except on the streams in ``unread`` (a reader that stopped).
    """

    is_client: bool
    addr: tuple[str, int]
    with_h3: bool
    config: H3Config | None
    engine: Any = None
    h3: WebTransportH3 | None = None
    events: list[Any] = field(default_factory=list)  # session events (h3) or engine events (raw)
    unread: set[int] = field(default_factory=set)  # WebTransport streams whose payload stays unread

    def start(self, engine: eng.QuicEngine, now: float) -> None:
        self.engine = engine
        if self.with_h3:
            self.h3 = WebTransportH3(engine, is_client=self.is_client, config=self.config)
            self.h3.initialize(now)

    def take(self) -> list[Any]:
        """Return and forget the events collected so far."""
        out, self.events = self.events, []
        return out


class Pair:
    """A client and a server side over two engines of the same kind, with a fake clock."""

    def __init__(
        self,
        engine_name: str,
        *,
        client_h3: bool = True,
        server_h3: bool = True,
        client_config: H3Config | None = None,
        server_config: H3Config | None = None,
        client_engine: Any = None,
        server_factory: Callable[[bytes], Any] | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        """``client_engine`` / ``server_factory`` (given the client's original destination
        connection id) replace our adapters, e.g. with a bare aioquic ``QuicConnection``;
        ``engine_options`` are ``EngineConfig`` fields for both of our engines."""
        self.now = 1000.0
        self.engine_name = engine_name
        self.client = Side(True, CLIENT_ADDR, client_h3, client_config)
        self.server = Side(False, SERVER_ADDR, server_h3, server_config)
        self._engine_options = engine_options or {}
        config = eng.EngineConfig(is_client=True, **self._engine_options)
        self._server_factory = server_factory
        if client_engine is None:
            client_engine = _create_engine(engine_name, config, None)
        self.client.start(client_engine, self.now)
        self.client.engine.connect(SERVER_ADDR, self.now)

    def _make_server(self, first: bytes) -> None:
        config = eng.EngineConfig(
            is_client=False,
            certificate_der=CERT[0],
            private_key_der=CERT[1],
            **self._engine_options,
        )
        if self._server_factory is not None:
            engine = self._server_factory(initial_dcid(first))
        else:
            engine = _create_engine(self.engine_name, config, initial_dcid(first))
        self.server.start(engine, self.now)

    # ---- driving ---------------------------------------------------------------------------------

    def _drain(self, side: Side) -> None:
        if side.engine is None:
            return
        while (ev := side.engine.next_event()) is not None:
            if side.h3 is None:
                side.events.append(ev)
                if isinstance(ev, eng.StreamDataReceived) and ev.data:
                    side.engine.consume(ev.stream_id, len(ev.data))
            else:
                side.h3.handle_engine_event(ev, self.now)
        if side.h3 is not None:
            while (sev := side.h3.next_event()) is not None:
                side.events.append(sev)
                if isinstance(sev, StreamDataReceived) and sev.data:
                    if sev.stream_id not in side.unread:
                        side.h3.consume(sev.stream_id, len(sev.data))

    def pump(self, max_rounds: int = 200) -> None:
        """Exchange datagrams until both sides are quiet (engine ack/loss timers included)."""
        for _ in range(max_rounds):
            moved = 0
            for src, dst in ((self.client, self.server), (self.server, self.client)):
                if src.engine is None:
                    continue
                for data, _addr in src.engine.datagrams_to_send(self.now):
                    if dst.engine is None:
                        self._make_server(data)
                    dst.engine.receive_datagram(data, src.addr, self.now)
                    moved += 1
            self._drain(self.client)
            self._drain(self.server)
            if moved:
                self.now += 0.0001  # a loopback-ish 100 µs per flight (lets pacers move on)
                continue
            # Quiet: fire engine timers that are due soon (delayed ACKs, PTO), never idle timeouts.
            sides = [s for s in (self.client, self.server) if s.engine is not None]
            timers = [t for s in sides if (t := s.engine.get_timer()) is not None]
            soon = [t for t in timers if t <= self.now + 1.0]
            if not soon:
                return
            # At least 1 µs: an engine may round a timer it was just handed down and not fire.
            self.now = max(self.now + 1e-6, min(soon))
            for side in sides:
                timer = side.engine.get_timer()
                if timer is not None and timer <= self.now:
                    side.engine.handle_timer(self.now)
            self._drain(self.client)
            self._drain(self.server)
        raise AssertionError(f"pair did not settle within {max_rounds} rounds")

    def advance(self, seconds: float) -> None:
        """Move the clock and fire the H3 timers that are due, then pump."""
        self.now += seconds
        for side in (self.client, self.server):
            if side.h3 is not None:
                timer = side.h3.get_timer()
                if timer is not None and timer <= self.now:
                    side.h3.handle_timer(self.now)
        self._drain(self.client)
        self._drain(self.server)
        self.pump()


def establish(pair: Pair, path: str = "/.well-known/libp2p-webtransport?type=noise") -> int:
    """CONNECT, SessionRequested, accept, SessionEstablished on both sides (events cleared)."""
    pair.pump()
    assert pair.client.h3 is not None and pair.server.h3 is not None
    sid = pair.client.h3.connect("example.test:443", path, pair.now)
    pair.pump()
    requested = pair.server.take()
    assert [type(e).__name__ for e in requested] == ["SessionRequested"], requested
    pair.server.h3.accept_session(sid)
    pair.pump()
    for side in (pair.client, pair.server):
        assert [(type(e).__name__, e.session_id) for e in side.take()] == [
            ("SessionEstablished", sid)
        ]
    return sid


# ---- a raw HTTP/3 peer, written independently of the code under test -------------------------


def varint(value: int) -> bytes:
    """RFC 9000 §16 variable-length integer (the test's own encoder, not ``_wire``'s)."""
    for size, prefix in ((1, 0x00), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * size - 2):
            raw = bytearray(value.to_bytes(size, "big"))
            raw[0] |= prefix
            return bytes(raw)
    raise ValueError(value)


def frame(frame_type: int, payload: bytes) -> bytes:
    return varint(frame_type) + varint(len(payload)) + payload


def settings_frame(settings: dict[int, int]) -> bytes:
    return frame(0x4, b"".join(varint(k) + varint(v) for k, v in settings.items()))


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split complete HTTP/3 frames (type, payload) of a request stream's bytes."""
    out, offset = [], 0
    while offset < len(data):
        values = []
        for _ in range(2):
            size = 1 << (data[offset] >> 6)
            values.append(
                int.from_bytes(data[offset : offset + size], "big") & ((1 << (8 * size - 2)) - 1)
            )
            offset += size
        out.append((values[0], data[offset : offset + values[1]]))
        offset += values[1]
    return out


CHROMIUM_SETTINGS = {0x01: 0, 0x07: 0, 0x2B603742: 1, 0x33: 1, 0xFFD277: 1, 0x1F * 3 + 0x21: 7}
GO_V011_SETTINGS = {0x2C7CF000: 1}


class RawPeer:
    """A bare engine driven byte by byte as an HTTP/3 peer (Chromium-, go- or broken-shaped)."""

    def __init__(self, pair: Pair, side: Side) -> None:
        assert side.h3 is None
        self.pair = pair
        self.side = side
        self.encoder = pylsqpack.Encoder()
        self.decoder = pylsqpack.Decoder(4096, 16)

    @property
    def engine(self) -> eng.QuicEngine:
        return self.side.engine

    def open(self, data: bytes, *, uni: bool, end: bool = False) -> int:
        stream_id = self.engine.get_next_available_stream_id(is_unidirectional=uni)
        self.engine.send_stream_data(stream_id, data, end)
        return stream_id

    def send(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self.engine.send_stream_data(stream_id, data, end)

    def start(self, settings: dict[int, int]) -> int:
        """Open control (with SETTINGS) and both QPACK streams; returns the control stream id."""
        control = self.open(b"\x00" + settings_frame(settings), uni=True)
        self.open(b"\x02", uni=True)
        self.open(b"\x03", uni=True)
        return control

    def headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        _, block = self.encoder.encode(stream_id, headers)
        return frame(0x1, block)

    # ---- what the peer received --------------------------------------------------------------

    def data(self, stream_id: int) -> bytes:
        return b"".join(
            e.data
            for e in self.side.events
            if isinstance(e, eng.StreamDataReceived) and e.stream_id == stream_id
        )

    def ended(self, stream_id: int) -> bool:
        return any(
            isinstance(e, eng.StreamDataReceived) and e.stream_id == stream_id and e.end_stream
            for e in self.side.events
        )

    def stream_ids(self) -> list[int]:
        seen: dict[int, None] = {}
        for e in self.side.events:
            if isinstance(e, eng.StreamDataReceived):
                seen[e.stream_id] = None
        return list(seen)

    def signals(self, stream_id: int) -> list[tuple[str, int]]:
        """RESET_STREAM / STOP_SENDING received on ``stream_id``, as (kind, code)."""
        out = []
        for e in self.side.events:
            if isinstance(e, eng.StreamReset) and e.stream_id == stream_id:
                out.append(("reset", e.error_code))
            elif isinstance(e, eng.StopSendingReceived) and e.stream_id == stream_id:
                out.append(("stop", e.error_code))
        return sorted(out)

    def close_code(self) -> int | None:
        for e in self.side.events:
            if isinstance(e, eng.ConnectionTerminated):
                return e.error_code
        return None

    def decode_headers(self, stream_id: int, payload: bytes) -> list[tuple[bytes, bytes]]:
        _, headers = self.decoder.feed_header(stream_id, payload)
        return list(headers)
