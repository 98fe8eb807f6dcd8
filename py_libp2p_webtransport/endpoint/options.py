"""The settings of one endpoint, checked once when they are made (``EndpointOptions``)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from .._errors import EngineError
from ..engine import DEFAULT_ENGINE, available_engines
from ..engine.base import EngineConfig
from .admission import AddressVerdict
from .retry import RETRY_MODES, RetryMode

__all__ = ["EndpointOptions"]


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    """How an endpoint is bound and whom it admits (``Endpoint.bind(host, port, options)``).

    * ``engine``: the QUIC engine of new connections (``"qh3"`` or ``"aioquic"``).
    * ``server_config``: what accepted connections get; None makes a client-only endpoint.
    * ``max_half_open``: accepted connections that may be handshaking at once; one that has
      not completed its QUIC handshake after ``handshake_timeout`` seconds is dropped.
    * ``initials_per_second``: new connections one source address may start a second (with a
      burst of as many); Initials beyond that are dropped and counted.
    * ``retry`` (RFC 9000 §8.1.2, see ``retry.py``): ``"always"`` answers every new client's
      first Initial with a Retry; ``"under_load"`` does so while at least ``retry_threshold``
      handshakes are in progress (default: half of ``max_half_open``) and, instead of dropping
      them, for Initials over a source's rate. Clients that come back with a valid token are
      not charged to that rate again; ``max_half_open`` bounds them all.
    * ``stateless_reset_secret`` (RFC 9000 §10.3, ``stateless_reset.py``): answer a short-header
      datagram for an unknown connection id with a stateless reset carrying the token derived
      from this secret (give the server engines the same secret:
      ``EngineConfig.stateless_reset_secret``). None: never.
    * ``address_verdict``: the owner's last say on each new connection, by source address
      (``admission.AddressVerdict``: None accepts, a ``DropReason`` refuses before any TLS work).
    * ``dual_stack``: an IPv6 wildcard socket (``::``) also takes IPv4.
    * ``udp``: the ``_udp`` twin to use (tests); None picks the compiled one when built.

    Raises ``EngineError`` for an engine that is unknown or not installed and ``ValueError``
    for any other setting out of range.
    """

    engine: str = DEFAULT_ENGINE
    server_config: EngineConfig | None = None
    max_half_open: int = 256
    handshake_timeout: float = 10.0
    initials_per_second: float = 50.0
    retry: RetryMode = "off"
    retry_threshold: int | None = None
    stateless_reset_secret: bytes | None = None
    address_verdict: AddressVerdict | None = None
    dual_stack: bool = False
    udp: ModuleType | None = None

    def __post_init__(self) -> None:
        if self.engine not in available_engines():
            raise EngineError(f"QUIC engine {self.engine!r} is unknown or not installed")
        if self.server_config is not None and self.server_config.is_client:
            raise ValueError("server_config must have is_client=False")
        if self.max_half_open < 1:
            raise ValueError(f"max_half_open must be >= 1, got {self.max_half_open}")
        if not self.handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be > 0, got {self.handshake_timeout}")
        if not self.initials_per_second > 0:
            raise ValueError(f"initials_per_second must be > 0, got {self.initials_per_second}")
        if self.retry not in RETRY_MODES:
            modes = ", ".join(RETRY_MODES)
            raise ValueError(f"retry must be one of {modes}; got {self.retry!r}")
        if self.stateless_reset_secret is not None and len(self.stateless_reset_secret) < 16:
            raise ValueError("stateless_reset_secret must be at least 16 bytes")
        if self.retry_threshold is not None and self.retry_threshold < 0:
            raise ValueError(f"retry threshold must be >= 0, got {self.retry_threshold}")
