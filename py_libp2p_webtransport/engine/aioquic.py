"""The aioquic engine: ``aioquic.quic.connection.QuicConnection`` behind ``QuicEngine``.

aioquic is pure Python apart from its buffer and AEAD glue, so it is the slow engine, but it
speaks to every client (including Chromium's zero-length connection ids) without help. Three
things are changed through its private API, each guarded by a named test in
``tests/engine/test_private_api.py``:

* **Flow control follows reads.** Stock aioquic doubles its receive windows as data *arrives*,
  so a reader that stops still lets the sender fill memory. ``_ConsumeDrivenConnection``
  overrides the two window writers so the advertised limit is ``consumed + window``, re-sent
  once consumption has moved half a window (webtransport-go ``flow_control.go``).
* **Pacing can be switched off** by giving the recovery a pacer that never delays a packet.
* **Stream limits** (``MAX_STREAMS``) are fixed at 128 in aioquic; we set the configured ones.
* **Stateless reset** (``engine/reset_token.py``): aioquic draws random reset tokens and never
  recognises a reset it receives. With ``EngineConfig.stateless_reset_secret`` the tokens of our
  connection ids are derived from it; and a short-header datagram ending with one of the peer's
  tokens ends the connection at once (``ConnectionTerminated`` with ``RESET_REASON``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aioquic
from aioquic.quic import events as aioquic_events
from aioquic.quic import logger as quic_logger
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import END_STATES, QuicConnection, QuicConnectionError
from aioquic.quic.packet import QuicErrorCode
from aioquic.quic.recovery import QuicPacketPacer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_der_private_key

from .._errors import EngineError
from ._adapter import AdapterBase, install_alpn_hook, require_private_api
from .base import EngineConfig, EngineStats
from .quic_config import (
    alpn_identities,
    cached_configurations,
    cached_identities,
    check_config,
    quic_configuration,
)
from .reset_token import RESET_REASON, is_stateless_reset, reset_token


class _NoPacer(QuicPacketPacer):
    """A pacer that never holds a packet back: the congestion window alone limits bursts."""

    def next_send_time(self, now: float) -> float | None:  # type: ignore[override]
        return None

    def update_after_send(self, now: float) -> None:
        pass

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        pass


class _ConsumeDrivenConnection(QuicConnection):
    """aioquic's connection with receive windows that follow ``consume()`` instead of arrival."""

    def __init__(
        self,
        *,
        stream_window: int,
        connection_window: int,
        reset_secret: bytes | None = None,
        alpn_hook: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.wt_reset_secret = reset_secret  # before super(): it issues connection ids
        super().__init__(**kwargs)
        self.wt_alpn_hook = alpn_hook
        self._wt_derive_reset_tokens()
        self.wt_stream_window = stream_window
        self.wt_connection_window = connection_window
        self.wt_connection_consumed = 0
        self.wt_packets_lost = 0
        on_packets_lost = self._loss._on_packets_lost

        def count_lost(**kw: Any) -> None:
            packets = list(kw.pop("packets"))
            self.wt_packets_lost += len(packets)
            on_packets_lost(packets=packets, **kw)

        self._loss._on_packets_lost = count_lost  # type: ignore[method-assign]

    # --- stateless reset --------------------------------------------------------------------
    def _wt_derive_reset_tokens(self) -> None:
        """Give our connection ids the tokens derived from the secret (aioquic draws random
        ones; a client's first id has none: clients advertise no token for it)."""
        secret = self.wt_reset_secret
        if secret is None:
            return
        for cid in self._host_cids:
            if cid.stateless_reset_token is not None:
                cid.stateless_reset_token = reset_token(secret, cid.cid)

    def _replenish_connection_ids(self) -> None:
        super()._replenish_connection_ids()
        self._wt_derive_reset_tokens()  # before the NEW_CONNECTION_ID frames are written

    def wt_peer_reset_tokens(self) -> list[bytes]:
        """The tokens the peer gave for its connection ids we may be talking to."""
        tokens = [self._peer_cid.stateless_reset_token]
        tokens.extend(cid.stateless_reset_token for cid in self._peer_cid_available)
        return [token for token in tokens if token]

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        if (
            not data[0] & 0x80
            and self._state not in END_STATES
            and is_stateless_reset(data, self.wt_peer_reset_tokens())
        ):
            # RFC 9000 §10.3.1: the connection is over; send nothing more.
            self._close_event = aioquic_events.ConnectionTerminated(
                error_code=QuicErrorCode.NO_ERROR, frame_type=None, reason_phrase=RESET_REASON
            )
            self._close_end()
            return
        super().receive_datagram(data, addr, now)

    def wt_consume(self, stream_id: int, n: int) -> None:
        """Credit ``n`` read bytes to the connection and (while it exists) to the stream."""
        self.wt_connection_consumed += n
        stream = self._streams.get(stream_id)
        if stream is not None:
            # Kept on the stream object so it disappears with the stream.
            setattr(stream, "wt_consumed", getattr(stream, "wt_consumed", 0) + n)  # noqa: B010

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if self.wt_alpn_hook is not None:
            self.wt_alpn_hook(self.tls)  # per-ALPN certificate and client authentication

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        max_data = self._local_max_data
        target = self.wt_connection_consumed + self.wt_connection_window
        if target - max_data.value >= self.wt_connection_window // 2:
            max_data.value = target
        # The stock writer doubles MAX_DATA when ``used`` passes half of it; hide ``used`` so
        # only the frame writing (and the MAX_STREAMS logic) of the stock code runs.
        used, max_data.used = max_data.used, 0
        try:
            super()._write_connection_limits(builder=builder, space=space)
        finally:
            max_data.used = used

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        if stream.max_stream_data_local:  # zero only for our own unidirectional streams
            target = getattr(stream, "wt_consumed", 0) + self.wt_stream_window
            if target - stream.max_stream_data_local >= self.wt_stream_window // 2:
                stream.max_stream_data_local = target
        receiver = stream.receiver
        highest, receiver.highest_offset = receiver.highest_offset, 0  # as above: no doubling
        try:
            super()._write_stream_limits(builder=builder, space=space, stream=stream)
        finally:
            receiver.highest_offset = highest

    def _handle_reset_stream_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        # Bytes a reset stream skipped count against MAX_DATA but will never be read, so they
        # are consumed here (RFC 9000 §4.5); read bytes are credited by the reader's consume().
        start = buf.tell()
        stream_id = buf.pull_uint_var()
        buf.seek(start)
        before = self._streams.get(stream_id)
        was_finished = before is not None and before.receiver.is_finished
        super()._handle_reset_stream_frame(context, frame_type, buf)
        stream = self._streams.get(stream_id)
        if stream is not None and not was_finished and stream.receiver.is_finished:
            receiver = stream.receiver
            self.wt_connection_consumed += receiver.highest_offset - receiver.starting_offset()


# aioquic methods _ConsumeDrivenConnection overrides (their absence would silently disable it).
_PATCHED = (
    "_write_stream_limits",
    "_write_connection_limits",
    "_handle_reset_stream_frame",
    "_replenish_connection_ids",
    "_close_end",
    "_initialize",
)


@cached_identities
def _load_identity(certificate_der: bytes, key_der: bytes) -> tuple[Any, Any]:
    """aioquic takes ``cryptography`` objects for the server's certificate and key."""
    try:
        return x509.load_der_x509_certificate(certificate_der), load_der_private_key(key_der, None)
    except ValueError as exc:
        raise EngineError(f"unusable server certificate or key: {exc}") from exc


def _request_client_certificate(tls: Any) -> None:
    # aioquic's server can ask for a client certificate, behind a private flag.
    tls._request_client_certificate = True


def _alpn_hook(config: EngineConfig) -> Callable[[Any], None] | None:
    if config.is_client or not (config.alpn_certificates or config.client_auth_alpns):
        return None
    identities = alpn_identities(config, _load_identity)
    client_auth = frozenset(config.client_auth_alpns)

    def hook(tls: Any) -> None:
        install_alpn_hook(tls, identities, client_auth, _request_client_certificate)

    return hook


@cached_configurations
def _configuration(config: EngineConfig) -> QuicConfiguration:
    quic_config: QuicConfiguration = quic_configuration(
        QuicConfiguration, config, load_identity=_load_identity, logger_module=quic_logger
    )
    return quic_config


class AioquicEngine(AdapterBase):
    """``QuicEngine`` over aioquic; ``consume()`` drives the receive windows."""

    name = "aioquic"
    _library_errors = (QuicConnectionError, AssertionError, ValueError, KeyError)

    def __init__(
        self,
        config: EngineConfig,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
    ) -> None:
        check_config(config)
        require_private_api("aioquic", aioquic.__version__, QuicConnection, _PATCHED)
        if not config.is_client and original_destination_connection_id is None:
            raise EngineError("a server engine needs the client's original destination CID")
        quic = _ConsumeDrivenConnection(
            configuration=_configuration(config),
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
            stream_window=config.max_stream_data,
            connection_window=config.max_data,
            reset_secret=config.stateless_reset_secret,
            alpn_hook=_alpn_hook(config),
        )
        for limit, value in (
            (quic._local_max_streams_bidi, config.max_streams_bidi),
            (quic._local_max_streams_uni, config.max_streams_uni),
        ):
            limit.value = limit.sent = value
        if not config.pacing:
            quic._loss._pacer = _NoPacer(max_datagram_size=config.max_datagram_size)
        super().__init__(config, quic, aioquic_events)

    def consume(self, stream_id: int, n: int) -> None:
        """Return ``n`` bytes of credit on ``stream_id`` and the connection.

        The window update goes out with the next ``datagrams_to_send()``.
        """
        self._reads.consumed(stream_id, n)
        self._quic.wt_consume(stream_id, n)

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes written to ``stream_id`` that the peer has not acknowledged yet."""
        stream = self._quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        size: int = sender._buffer_stop - sender._buffer_start
        return size

    @property
    def receive_paused(self) -> bool:
        """Always False: aioquic's per-stream windows follow ``consume()``, so a reader that
        stops holds back only its own stream and reception as a whole never pauses."""
        return False

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf certificate (DER) once the handshake has received it."""
        tls = getattr(self._quic, "tls", None)
        cert = getattr(tls, "_peer_certificate", None)
        return None if cert is None else cert.public_bytes(Encoding.DER)

    def stats(self) -> EngineStats:
        """Transport counters; RTT, window and bytes in flight from aioquic's loss recovery."""
        loss = self._quic._loss
        return EngineStats(
            rtt=loss._rtt_smoothed,
            cwnd=loss.congestion_window,
            bytes_in_flight=loss.bytes_in_flight,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            packets_sent=self._packets_sent,
            packets_received=self._packets_received,
            packets_lost=self._quic.wt_packets_lost,
        )
