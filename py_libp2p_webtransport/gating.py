"""py-libp2p's connection gater and resource manager, consulted before the QUIC handshake.

py-libp2p 0.8.1 checks both only once a connection is secured: for a natively multiplexed
connection like ours, after QUIC, TLS, the CONNECT and Noise. A denied or over-limit peer has
cost a full handshake by then. ``PreHandshakeAdmission`` gives the endpoint an address verdict
(``endpoint.admission.AddressVerdict``) that asks them when the client's first Initial arrives,
before any TLS work:

* the **gater** (``libp2p.network.connection_gate.ConnectionGate``: allow and deny lists, private
  addresses): a denied source address is dropped (``EndpointStats.dropped_gated``);
* the **resource manager** (``libp2p.rcmgr.ResourceManager``): a connection slot is opened for the
  source address (its connection limit, per-CIDR limits, circuit breaker); none left, the Initial
  is dropped (``dropped_over_limit``). The slot is held while the handshake runs and released when
  the connection is handed to the swarm, whose ``add_conn`` opens the authoritative one with the
  peer id (the peer-based check after Noise: per-peer limits and rate, allowlist), or when the
  handshake fails;
* with ``WebTransportConfig.reserve_window_memory``, the connection's receive bound (the memory a
  peer can make us hold: ``max_data`` on aioquic, ``recv_budget`` on qh3) is reserved in the
  resource manager's memory for the connection's life; no room, the Initial is dropped.

Both objects are the swarm's (``swarm.connection_gate``, the resource manager given to
``new_host(resource_manager=...)``) unless ``WebTransportConfig.connection_gate`` /
``resource_manager`` name others. The gate is asked through its synchronous per-IP check (the
source is an IP literal; no DNS).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .endpoint.admission import DropReason
from .engine.base import Address

__all__ = ["PreHandshakeAdmission", "Reservation", "plain_ip"]

logger = logging.getLogger(__name__)


@dataclass
class Reservation:
    """What the resource manager granted a new connection; ``release_*`` are idempotent."""

    manager: Any
    scope: Any  # the manager's ConnectionScope (None: no manager)
    memory: int = 0

    def release_connection(self) -> None:
        """The handshake ended (handed to the swarm, or failed): free the connection slot."""
        scope, self.scope = self.scope, None
        if scope is not None:
            try:
                scope.close()
            except Exception:  # a closed manager: nothing left to release
                logger.debug("releasing a connection scope", exc_info=True)

    def release_memory(self) -> None:
        """The connection ended: give its receive memory back."""
        memory, self.memory = self.memory, 0
        if memory:
            try:
                self.manager.release_memory(memory)
            except Exception:
                logger.debug("releasing reserved memory", exc_info=True)

    def release(self) -> None:
        self.release_connection()
        self.release_memory()


def plain_ip(addr: Address) -> str:
    """The source IP as py-libp2p's lists expect it: an IPv4-mapped IPv6 address (a dual-stack
    socket's IPv4 client) as IPv4, an IPv6 zone (``%eth0``) dropped."""
    host = str(addr[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(ip)


class PreHandshakeAdmission:
    """The listener's address verdict: the gater, then the resource manager (see module doc).

    ``gate()`` and ``manager()`` return the current objects (None: not consulted). A granted
    reservation waits for ``claim(address)``, which the listener calls for the connection the
    endpoint creates right after the verdict; one never claimed (the endpoint failed to create
    the connection) is released at the next verdict.
    """

    def __init__(
        self,
        gate: Callable[[], Any],
        manager: Callable[[], Any],
        window_memory: int = 0,
    ) -> None:
        self._gate = gate
        self._manager = manager
        self._window_memory = window_memory
        self._pending: dict[Address, Reservation] = {}

    def verdict(self, addr: Address) -> DropReason | None:
        """None to accept a new connection from ``addr``, else the reason to drop its Initial."""
        for stale in self._pending.values():
            stale.release()
        self._pending.clear()
        ip = plain_ip(addr)
        gate = self._gate()
        if gate is not None and not gate._check_ip_allowed(ip):
            return "dropped_gated"
        manager = self._manager()
        if manager is None:
            return None
        scope = manager.open_connection(None, endpoint_ip=ip, direction="inbound")
        if scope is None:
            return "dropped_over_limit"
        reservation = Reservation(manager, scope)
        if self._window_memory:
            if not manager.acquire_memory(self._window_memory):
                reservation.release()
                return "dropped_over_limit"
            reservation.memory = self._window_memory
        self._pending[addr] = reservation
        return None

    def claim(self, addr: Address) -> Reservation | None:
        """The reservation made for the connection from ``addr`` just accepted (or None)."""
        return self._pending.pop(addr, None)


def configured_gate(config: Any, swarm: Any) -> Any:
    """The connection gater a transport asks before each handshake: the configured one, else
    the swarm's (``swarm.connection_gate``: py-libp2p's allow/deny lists), else None."""
    if config.connection_gate is not None:
        return config.connection_gate
    return getattr(swarm, "connection_gate", None)


def configured_resource_manager(config: Any, swarm: Any) -> Any:
    """The resource manager a transport asks before each handshake: the configured one, else
    the swarm's (``new_host(resource_manager=...)``, or py-libp2p's default), else None."""
    if config.resource_manager is not None:
        return config.resource_manager
    # py-libp2p 0.8.1 keeps it private (set_resource_manager has no getter).
    return getattr(swarm, "_resource_manager", None)
