"""The qh3 engine: qh3's ``QuicConnection`` (a native packet core) behind ``QuicEngine``.

qh3 is several times cheaper per packet than aioquic. Its Python facade is subclassed
(``connection.Qh3Connection``), each private name guarded by named tests in
``tests/engine/test_private_api_qh3.py``:

* **Core and TLS construction** (``_create_core``, ``_create_tls``) are ours, so the configured
  ``MAX_STREAMS`` are both enforced and advertised (qh3 fixes them at 100/103 in both places),
  and so the zero-length-CID workaround can choose the core's connection ids.
* **Zero-length client connection ids** (Chromium) need ``zero_length_cid``.
* **The server's handshake receive path** keeps padding after a packet with that packet (see
  ``Qh3Connection.receive_datagram``); without it aioquic clients cannot connect.
* **A receive budget.** qh3's core returns flow-control credit when its stream events are
  popped, and its facade pops them all eagerly, so credit follows arrival. The only lossless
  bound is per connection: we stop popping the core while more than ``recv_budget`` delivered
  bytes are unread (not yet ``consume()``d) and resume when ``consume()`` brings them back
  under. A slow stream then stalls its fast siblings, and datagrams, resets and close notices
  wait too (termination is never held back: a closing core is always drained).

Datagram size: a qh3 server sends ``max_datagram_size``; a qh3 *client* starts at 1280 and
probes the path MTU up to 1472 bytes whatever ``max_datagram_size`` says (without probing it
would stay at 1280). Probing is safe: a lost probe only ends the search.

Stateless reset: the server's transport parameter carries the token derived from
``EngineConfig.stateless_reset_secret``; the core draws the tokens of the ids it issues later
(NEW_CONNECTION_ID) itself, random, so a peer that switched to one of those is not reset
(``Qh3Connection._wt_derive_reset_tokens``). The core recognises a peer's reset; the adapter
names it (``RESET_REASON``).

Two qh3 bugs are worked around on the send path, each with a test that keeps the upstream bug
visible: ``send_gate`` (ACKs withheld behind a full congestion window, a stall under loss) and
``fin_hold`` (a lost FIN sent alone is never re-sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import qh3
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from qh3 import _hazmat
from qh3.quic import events as qh3_events
from qh3.quic import logger as quic_logger
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection, QuicConnectionError
from qh3.tls import load_pem_private_key

from ..._errors import EngineError, StreamLimitReached
from .._adapter import AdapterBase, ReadAccount, install_alpn_hook, require_private_api
from ..base import Address, ConnectionTerminated, EngineConfig, EngineStats
from ..quic_config import (
    alpn_identities,
    cached_configurations,
    cached_identities,
    check_config,
    quic_configuration,
)
from ..reset_token import RESET_REASON, is_stateless_reset
from . import client_auth
from .connection import PATCHED, Qh3Connection
from .fin_hold import FinHold
from .send_gate import SendGate, send_budget

# qh3 facade attributes holding the next local stream ids (see Qh3Engine.send_stream_data).
_NEXT_STREAM_IDS = (
    "_next_stream_id_bidi",
    "_local_next_stream_id_bidi",
    "_next_stream_id_uni",
    "_local_next_stream_id_uni",
)


@cached_identities
def _load_identity(certificate_der: bytes, key_der: bytes) -> tuple[Any, Any]:
    """qh3 takes its own native certificate and key objects (the key through PEM)."""
    try:
        key = load_der_private_key(key_der, None)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return _hazmat.Certificate(certificate_der), load_pem_private_key(pem)
    except Exception as exc:  # qh3's native loaders raise their own exception types
        raise EngineError(f"unusable server certificate or key: {exc}") from exc


def _request_client_certificate(tls: Any) -> None:
    tls.wt_client_auth = True  # the context is a client_auth.ClientAuthContext (see the hook)


def _alpn_hook(config: EngineConfig) -> Callable[[Any], None] | None:
    if config.is_client or not (config.alpn_certificates or config.client_auth_alpns):
        return None
    identities = alpn_identities(config, _load_identity)
    auth = frozenset(config.client_auth_alpns)

    def hook(tls: Any) -> None:
        if auth:
            client_auth.install(tls)  # before the ClientHello: the ALPN is chosen inside it
        install_alpn_hook(tls, identities, auth, _request_client_certificate)

    return hook


@cached_configurations
def _configuration(config: EngineConfig) -> QuicConfiguration:
    quic_config: QuicConfiguration = quic_configuration(
        QuicConfiguration, config, load_identity=_load_identity, logger_module=quic_logger
    )
    if config.is_client and not config.verify_peer:
        quic_config.verify_hostname = False  # qh3 checks the name separately from the chain
    return quic_config


class Qh3Engine(AdapterBase):
    """``QuicEngine`` over qh3; ``consume()`` feeds the per-connection receive budget."""

    name = "qh3"
    _library_errors = (QuicConnectionError, AssertionError, ValueError, KeyError, RuntimeError)

    def __init__(
        self,
        config: EngineConfig,
        *,
        original_destination_connection_id: bytes | None = None,
        retry_source_connection_id: bytes | None = None,
        send_gate: bool = True,
        fin_hold: bool = True,
    ) -> None:
        """``send_gate=False`` hands every write to the core at once, ``fin_hold=False`` every
        FIN (only for tests that show the qh3 bugs the two prevent)."""
        check_config(config)
        require_private_api("qh3", qh3.__version__, QuicConnection, PATCHED)
        if not config.is_client and original_destination_connection_id is None:
            raise EngineError("a server engine needs the client's original destination CID")
        reads = ReadAccount()
        quic = Qh3Connection(
            configuration=_configuration(config),
            original_destination_connection_id=original_destination_connection_id,
            retry_source_connection_id=retry_source_connection_id,
            max_streams_bidi=config.max_streams_bidi,
            max_streams_uni=config.max_streams_uni,
            recv_budget=config.recv_budget,
            unread=reads,
            reset_secret=config.stateless_reset_secret,
            alpn_hook=_alpn_hook(config),
        )
        super().__init__(config, quic, qh3_events, reads)
        # Stream data the core's congestion window cannot take yet (see send_gate).
        self._gate: SendGate | None = SendGate() if send_gate else None
        # FINs without data that must wait for their stream's data to be acknowledged.
        self._fins: FinHold | None = FinHold() if fin_hold else None
        self._peer_reset = False  # the peer's stateless reset ended the connection

    def receive_datagrams(self, datagrams: Iterable[bytes], addr: Address, now: float) -> None:
        """Feed a batch through qh3's native ``receive_many_datagrams``."""
        batch = datagrams if isinstance(datagrams, list) else list(datagrams)
        for data in batch:
            self._bytes_received += len(data)
        self._packets_received += len(batch)
        self._quic.receive_many_datagrams(batch, addr, now)
        if self._quic._close_event is not None and not self._closed_locally:
            self._note_peer_reset(batch)
        self._note_close_on_receive()
        if self._keepalive is not None and self._handshake_done:
            self._arm_keepalive(now)

    def _note_peer_reset(self, batch: list[bytes]) -> None:
        """qh3's core recognises a stateless reset itself but reports it as a plain close (code
        0, no reason): name it when a datagram of the batch carried the peer's token."""
        tokens = self._quic.wt_peer_reset_tokens()
        if tokens and any(is_stateless_reset(data, tokens) for data in batch):
            self._peer_reset = True

    def _on_terminated(self, event: Any) -> ConnectionTerminated:
        terminated = super()._on_terminated(event)
        if self._peer_reset:
            return ConnectionTerminated(terminated.error_code, RESET_REASON, remote=True)
        return terminated

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data``; ``StreamLimitReached`` when a new stream exceeds the peer's limit.

        What the core's congestion window cannot carry yet waits in the send gate (see
        ``send_gate``); the first bytes (or an empty write) always reach the core at once,
        so a new stream takes its id and meets the stream limit here. A FIN without data may
        wait for the stream's data to be acknowledged (see ``fin_hold``).
        """
        gate = self._gate
        core = self._quic._core
        fins = self._fins
        if fins is not None and fins.holds(stream_id):
            raise EngineError(f"stream {stream_id}: write after the end of the stream")
        if core is None:
            self._send_to_core(stream_id, data, end_stream)
            return
        if gate is not None and gate.holds(stream_id):
            gate.hold(stream_id, data, end_stream)
            return
        if not data and end_stream and fins is not None and self._hold_fin(stream_id):
            return
        if gate is None:
            self._send_to_core(stream_id, data, end_stream)
            return
        budget = self._send_budget()
        if len(data) <= budget:
            self._send_to_core(stream_id, data, end_stream)
            return
        self._send_to_core(stream_id, data[:budget], False)
        gate.hold(stream_id, data[budget:], end_stream)

    def _hold_fin(self, stream_id: int) -> bool:
        """True if the FIN (without data) of ``stream_id`` waits in the FIN hold."""
        assert self._fins is not None
        core = self._quic._core
        return self._fins.hold_if_needed(
            stream_id,
            self._quic.wt_now or 0.0,
            losses=core.loss_total,
            unsent=core.get_send_buffer_size(stream_id),
            reservation_possible=self._quic.wt_window_closed,
            in_flight=self._in_flight,
        )

    def _in_flight(self) -> tuple[int, int] | None:
        """Lowest and highest application packet number in flight (None: nothing is)."""
        core = self._quic._core
        if core is None or core.bytes_in_flight == 0:
            return None  # what stays outstanding then are ACK-only packets: nothing to wait for
        numbers = [packet[0] for packet in core.outstanding_application_packets]
        return (min(numbers), max(numbers)) if numbers else None

    def _release_fins(self, now: float) -> bool:
        """Hand the core the held FINs whose data is acknowledged now; True if any went."""
        fins = self._fins
        core = self._quic._core
        if fins is None or not len(fins) or core is None:
            return False
        ready = fins.due(
            now, losses=core.loss_total, rtt=core.smoothed_rtt or 0.0, in_flight=self._in_flight
        )
        for stream_id in ready:
            try:
                self._quic.send_stream_data(stream_id, b"", True)
            except self._library_errors:
                pass  # the stream was reset or the connection is closing meanwhile
        return bool(ready)

    def get_timer(self) -> float | None:
        """The core's next timer, or earlier when a held FIN needs time to pass."""
        timer = super().get_timer()
        fins = self._fins
        core = self._quic._core
        if fins is not None and len(fins) and core is not None:
            extra = fins.deadline(self._quic.wt_now or 0.0, core.smoothed_rtt or 0.0)
            if extra is not None and (timer is None or extra < timer):
                timer = extra
        return timer

    def _send_budget(self) -> int:
        core = self._quic._core
        return send_budget(
            core.congestion_window, core.bytes_in_flight, core.get_send_buffer_size(None)
        )

    def _release_held(self) -> None:
        """Hand the core what its window can take now, round-robin over the held streams."""
        gate = self._gate
        if gate is None or not len(gate) or self._quic._core is None:
            return
        for stream_id, chunk, end_stream in gate.release(self._send_budget()):
            try:
                self._quic.send_stream_data(stream_id, chunk, end_stream)
                self._note_written(stream_id, end_stream)
            except self._library_errors:
                # The stream can no longer send (reset, STOP_SENDING, connection closing):
                # the application hears of that through the stream's own events.
                gate.drop(stream_id)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Release held stream data the window can take, then collect the datagrams (straight
        from the native core, see ``Qh3Connection._wt_poll``); then FINs held until their
        data was acknowledged (see ``fin_hold``), which what was just sent may allow."""
        if self._gate is not None and len(self._gate):
            self._release_held()
        out: list[tuple[bytes, Address]] = self._quic.datagrams_to_send(now)
        if self._release_fins(now):
            out.extend(self._quic.datagrams_to_send(now))
        self._packets_sent += len(out)
        nbytes = 0
        for data, _ in out:
            nbytes += len(data)
        self._bytes_sent += nbytes
        return out

    def _note_written(self, stream_id: int, end_stream: bool) -> None:
        """Data (and maybe the FIN) of ``stream_id`` went to the core: tell the FIN hold."""
        fins = self._fins
        if fins is not None:
            if end_stream:
                fins.forget(stream_id)
            elif self._quic._core is not None:
                fins.wrote(stream_id, self._quic._core.loss_total)

    def _send_to_core(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Write straight to the core; ``StreamLimitReached`` when a new stream exceeds the
        peer's limit.

        aioquic queues such a stream until MAX_STREAMS arrives; qh3's core refuses it
        (ValueError) but its facade has already taken the id (``_record_local_stream``): we give
        the id back, or every retry would burn one more id past the peer's limit and never fit.
        """
        quic = self._quic
        ids = tuple(getattr(quic, name) for name in _NEXT_STREAM_IDS)
        known = stream_id in quic._created_local_stream_ids
        try:
            quic.send_stream_data(stream_id, data, end_stream)
            if data or end_stream:
                self._note_written(stream_id, end_stream)
        except ValueError as exc:
            if "stream limit" in str(exc):
                for name, value in zip(_NEXT_STREAM_IDS, ids, strict=True):
                    setattr(quic, name, value)
                if not known:
                    quic._created_local_stream_ids.discard(stream_id)
                raise StreamLimitReached(f"{self.name}: stream {stream_id}: {exc}") from exc
            raise EngineError(f"{self.name}: send_stream_data({stream_id}) failed: {exc}") from exc
        except self._library_errors as exc:
            raise EngineError(f"{self.name}: send_stream_data({stream_id}) failed: {exc}") from exc

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """RESET_STREAM; a no-op once every byte we sent was acknowledged.

        RFC 9000 §3.1 has no reset in "Data Recvd" (nothing left to abort), but qh3's core raises
        for it. A reset racing the peer's last ACK is normal (e.g. a handler resetting a stream
        right after closing it), so it must not surface as an engine failure.
        """
        if self._gate is not None:
            self._gate.drop(stream_id)
        if self._fins is not None:
            self._fins.forget(stream_id)
        try:
            self._quic.reset_stream(stream_id, error_code)
        except ValueError as exc:
            if "completed stream" not in str(exc):
                raise EngineError(f"{self.name}: reset_stream({stream_id}) failed: {exc}") from exc
        except self._library_errors as exc:
            raise EngineError(f"{self.name}: reset_stream({stream_id}) failed: {exc}") from exc

    def consume(self, stream_id: int, n: int) -> None:
        """Account ``n`` read bytes; resumes taking events from the core once under budget.

        Call ``next_event()`` and ``datagrams_to_send()`` afterwards: resuming may have made
        events ready and credit (MAX_DATA / MAX_STREAM_DATA) due.
        """
        self._reads.consumed(stream_id, n)
        self._quic.wt_resume()

    def send_buffer_size(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` not yet transmitted once (qh3 does not expose unacked bytes)."""
        try:
            size: int = self._quic.get_send_buffer_size(stream_id)
        except ValueError as exc:
            raise EngineError(str(exc)) from exc
        if self._gate is not None and self._quic._close_event is None:
            size += self._gate.held_bytes(stream_id)
        return size

    def close(self, error_code: int = 0, reason: str = "") -> None:
        """CONNECTION_CLOSE; held stream data and FINs are dropped with the connection."""
        if self._gate is not None:
            self._gate.clear()
        if self._fins is not None:
            self._fins.clear()
        super().close(error_code, reason)

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf certificate (DER) once the handshake has received it."""
        cert = self._quic.get_peercert()
        return None if cert is None else bytes(cert.public_bytes())

    @property
    def receive_paused(self) -> bool:
        """True while the receive budget holds events (and so credit) back in the core."""
        return bool(self._quic.wt_over_budget())

    def stats(self) -> EngineStats:
        """Transport counters; RTT, window, bytes in flight and losses from qh3's native core."""
        core = self._quic._core
        return EngineStats(
            rtt=(core.smoothed_rtt or 0.0) if core is not None else 0.0,
            cwnd=core.congestion_window if core is not None else 0,
            bytes_in_flight=core.bytes_in_flight if core is not None else 0,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            packets_sent=self._packets_sent,
            packets_received=self._packets_received,
            packets_lost=core.loss_total if core is not None else 0,
        )
