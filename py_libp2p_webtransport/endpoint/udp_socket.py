"""The endpoint's UDP socket: opened with big buffers, sent to in batches, never out of order.

``open_socket`` makes the non-blocking socket ``Endpoint.bind`` uses. ``UdpSocket`` sends
through a ``_udp`` twin (batched, GSO where the kernel has it); what the kernel refuses with a
full buffer is kept, in order, until the pump sees the socket writable again: nothing is dropped
and nothing overtakes it. No trio here: the pump does the waiting.
"""

from __future__ import annotations

import logging
import socket
from types import ModuleType
from typing import Any

from .. import _udp
from ..engine.base import Address
from .connection import EndpointStats

__all__ = ["SOCKET_BUFFER_SIZE", "UdpSocket", "open_socket"]

logger = logging.getLogger(__name__)

SOCKET_BUFFER_SIZE = 4 * 1024 * 1024  # 4 MiB: the 208 KiB default overflows (FACTS.md)


def open_socket(
    addrinfo: tuple[Any, ...], dual_stack: bool, udp: ModuleType | None = None
) -> socket.socket:
    """A bound, non-blocking UDP socket for one ``getaddrinfo`` result (``OSError`` if not);
    ``udp``: the ``_udp`` twin that will read it (None: the package's choice)."""
    family, _type, proto, _name, sockaddr = addrinfo
    sock = socket.socket(family, socket.SOCK_DGRAM, proto)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        _set_buffer(sock, socket.SO_RCVBUF, getattr(socket, "SO_RCVBUFFORCE", None))
        _set_buffer(sock, socket.SO_SNDBUF, getattr(socket, "SO_SNDBUFFORCE", None))
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    (udp if udp is not None else _udp).enable_gro(sock)  # both twins split coalesced buffers
    return sock


def _set_buffer(sock: socket.socket, option: int, force: int | None) -> None:
    """Ask for 4 MiB; the privileged FORCE variant ignores the sysctl cap where we may use it."""
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_SIZE)
            return
        except OSError:
            pass
    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_SIZE)


class UdpSocket:
    """A bound socket and the datagrams the kernel has not taken yet; sends count in ``stats``."""

    def __init__(self, sock: socket.socket, udp: ModuleType | None, stats: EndpointStats) -> None:
        self.sock = sock
        self.udp: ModuleType = udp if udp is not None else _udp
        self.fileno = sock.fileno()
        self.local_address: Address = sock.getsockname()
        self._is_ipv6 = sock.family == socket.AF_INET6
        self._stats = stats
        self._backlog: list[tuple[list[bytes], Address]] = []  # unsent after EAGAIN, in order
        self._logged_error = False

    @property
    def unsent(self) -> int:
        """Datagrams held back because the kernel's send buffer was full."""
        return sum(len(datagrams) for datagrams, _ in self._backlog)

    def normalize(self, addr: Address) -> Address:
        """The form ``recvfrom`` reports for ``addr`` on this socket (so paths compare equal)."""
        host, port = addr[0], addr[1]
        if not self._is_ipv6:
            return (host, port)
        if ":" not in host:
            host = "::ffff:" + host
        if len(addr) == 4:
            return addr
        return (host, port, 0, 0)

    def send_all(self, out: list[tuple[bytes, Address]]) -> None:
        """Send an engine's output; consecutive datagrams to one address go in one batch."""
        run: list[bytes] = []
        run_addr = out[0][1]
        for data, addr in out:
            if addr != run_addr:
                self.send(run, run_addr)
                run, run_addr = [], addr
            run.append(data)
        self.send(run, run_addr)

    def send(self, datagrams: list[bytes], addr: Address) -> None:
        """Send now what the kernel takes; keep the rest for ``flush`` (in order)."""
        if self._backlog:  # keep order: queue behind what the kernel refused earlier
            self._backlog.append((datagrams, addr))
            return
        sent = self._send_now(datagrams, addr)
        if sent < len(datagrams):
            self._backlog.append((datagrams[sent:], addr))

    def flush(self) -> bool:
        """Send the backlog until the kernel pushes back again; True when it is empty."""
        backlog = self._backlog
        while backlog:
            datagrams, addr = backlog[0]
            sent = self._send_now(datagrams, addr)
            if sent < len(datagrams):
                backlog[0] = (datagrams[sent:], addr)
                return False
            backlog.pop(0)
        return True

    def has_backlog(self) -> bool:
        return bool(self._backlog)

    def close(self) -> None:
        """Send what the kernel still takes (best effort), then close."""
        if self._backlog:
            self.flush()
            self._backlog.clear()
        self.sock.close()

    def _send_now(self, datagrams: list[bytes], addr: Address) -> int:
        stats = self._stats
        try:
            sent: int = self.udp.send_batch(self.sock, datagrams, addr)
        except OSError as exc:
            # Unreachable peer or similar: QUIC recovers (or times out) as for a lost packet.
            stats.send_errors += len(datagrams)
            if not self._logged_error:
                self._logged_error = True
                logger.info("UDP send error to %s (logged once): %s", addr, exc)
            return len(datagrams)
        stats.datagrams_sent += sent
        stats.bytes_sent += sum(len(d) for d in datagrams[:sent])
        if sent < len(datagrams):
            stats.send_blocked += 1
        return sent
