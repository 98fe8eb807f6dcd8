"""Batched UDP I/O on a non-blocking socket: the pure-Python reference twin of ``_udp_c``.

``recv_batch`` reads until the socket would block (or a maximum is reached) and ``send_batch``
sends many datagrams to one destination, stopping, not dropping, when the kernel buffer is full.
The compiled twin does the same with ``recvmmsg``/``sendmmsg`` and segmentation offload (GSO);
this one loops over ``recvmsg``/``sendto``. Both split receive-offload (GRO) buffers into their
datagrams when ``enable_gro`` switched it on, so the two are interchangeable on any socket.

Addresses are numeric only (no name resolution on the hot path): ``(host, port)`` for IPv4,
``(host, port)`` or ``(host, port, flowinfo, scope_id)`` for IPv6, exactly as ``socket.recvfrom``
returns them.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys

__all__ = [
    "IMPLEMENTATION",
    "Address",
    "enable_gro",
    "gso_supported",
    "recv_batch",
    "send_batch",
]

IMPLEMENTATION = "python"

Address = tuple[str, int] | tuple[str, int, int, int]

# Linux values (include/uapi/linux/udp.h); the socket module does not export them.
_SOL_UDP = 17
_UDP_SEGMENT = 103
_UDP_GRO = 104
_IS_LINUX = sys.platform.startswith("linux")
# Room for one UDP_GRO control message (an int segment size).
_GRO_ANCBUF = socket.CMSG_SPACE(4) if hasattr(socket, "CMSG_SPACE") else 0
_WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)
# Windows has no MSG_DONTWAIT: there the socket itself must be non-blocking (as trio's are).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


def _as_socket(sock: socket.socket | int) -> tuple[socket.socket, bool]:
    """Return a socket object for ``sock`` and whether we must detach it afterwards."""
    if isinstance(sock, int):
        if sock < 0:
            raise ValueError(f"invalid file descriptor {sock}")
        return socket.socket(fileno=sock), True
    if not hasattr(sock, "fileno"):
        raise TypeError(f"expected a socket or a file descriptor, got {type(sock).__name__}")
    return sock, False


def _check_counts(max_datagrams: int, bufsize: int) -> None:
    if max_datagrams < 1:
        raise ValueError(f"max_datagrams must be >= 1, got {max_datagrams}")
    if not 1 <= bufsize <= 1 << 20:
        raise ValueError(f"bufsize must be in 1..1048576, got {bufsize}")


def _sendto_address(family: int, addr: Address) -> Address:
    """Validate a numeric address tuple and shape it for a socket of ``family``.

    No name resolution (the compiled twin parses literals only). An IPv4 literal on an IPv6
    socket becomes its v4-mapped form (``::ffff:a.b.c.d``, dual-stack sockets); an IPv6 literal
    on an IPv4 socket fails with EAFNOSUPPORT, as the kernel answers the compiled twin.
    """
    if not isinstance(addr, tuple) or len(addr) not in (2, 4):
        raise ValueError(
            f"address must be (host, port) or (host, port, flowinfo, scope_id): {addr!r}"
        )
    host, port = addr[0], addr[1]
    if not isinstance(host, str) or not isinstance(port, int):
        raise ValueError(f"address must be (str, int, ...): {addr!r}")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    v6 = ":" in host
    if len(addr) == 4:
        if not v6:
            raise ValueError(f"a 4-tuple address must be IPv6: {addr!r}")
        _check_ipv6_extras(addr)
    try:
        socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, host)
    except (OSError, ValueError):
        raise ValueError(f"not a numeric IP address: {host!r}") from None
    if family == socket.AF_INET6:
        return addr if v6 else ("::ffff:" + host, port)
    if v6:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    return addr


def _check_ipv6_extras(addr: Address) -> None:
    flowinfo, scope_id = addr[2], addr[3]  # type: ignore[misc]
    if not isinstance(flowinfo, int) or not 0 <= flowinfo <= 0xFFFFF:
        raise ValueError(f"flowinfo must be an int in 0..0xfffff: {addr!r}")
    if not isinstance(scope_id, int) or not 0 <= scope_id <= 0xFFFFFFFF:
        raise ValueError(f"scope_id must be an int in 0..0xffffffff: {addr!r}")


def _check_datagrams(datagrams: list[bytes]) -> None:
    for d in datagrams:
        if not isinstance(d, (bytes, bytearray, memoryview)):
            raise TypeError(f"a bytes-like object is required, not {type(d).__name__!r}")


def gso_supported(sock: socket.socket | int) -> bool:
    """Whether the kernel can segment sends on this socket (``UDP_SEGMENT``, Linux >= 4.18)."""
    if not _IS_LINUX:
        return False
    s, detach = _as_socket(sock)
    try:
        s.getsockopt(_SOL_UDP, _UDP_SEGMENT)
    except OSError:
        return False
    finally:
        if detach:
            s.detach()
    return True


def enable_gro(sock: socket.socket | int) -> bool:
    """Switch on receive offload (``UDP_GRO``); ``recv_batch`` then splits coalesced buffers.

    Returns False where the kernel has no GRO for UDP (nothing changes then).
    """
    if not _IS_LINUX:
        return False
    s, detach = _as_socket(sock)
    try:
        s.setsockopt(_SOL_UDP, _UDP_GRO, 1)
    except OSError:
        return False
    finally:
        if detach:
            s.detach()
    return True


def _gro_segment_size(ancdata: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancdata:
        if level == _SOL_UDP and kind == _UDP_GRO and len(data) >= 4:
            return int(struct.unpack("=i", data[:4])[0])
    return 0


def recv_batch(
    sock: socket.socket | int, max_datagrams: int = 64, bufsize: int = 65536
) -> list[tuple[bytes, Address]]:
    """Read datagrams until the socket would block or ``max_datagrams`` were read.

    A coalesced GRO buffer counts as one read and yields all its datagrams. Returns ``[]`` when
    nothing is waiting. Socket errors other than "would block" propagate as ``OSError`` unless
    some datagrams were already read (they are returned; the next call sees the error again).
    """
    _check_counts(max_datagrams, bufsize)
    s, detach = _as_socket(sock)
    out: list[tuple[bytes, Address]] = []
    try:
        reads = 0
        while reads < max_datagrams:
            try:
                if _GRO_ANCBUF:
                    data, ancdata, _flags, addr = s.recvmsg(bufsize, _GRO_ANCBUF, _DONTWAIT)
                else:  # pragma: no cover  (platforms without ancillary data support)
                    data, addr = s.recvfrom(bufsize, _DONTWAIT)
                    ancdata = []
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _WOULD_BLOCK or isinstance(exc, BlockingIOError):
                    break
                if out:
                    break
                raise
            reads += 1
            seg = _gro_segment_size(ancdata) if ancdata else 0
            if 0 < seg < len(data):
                for i in range(0, len(data), seg):
                    out.append((data[i : i + seg], addr))
            else:
                out.append((data, addr))
    finally:
        if detach:
            s.detach()
    return out


def send_batch(
    sock: socket.socket | int, datagrams: list[bytes], addr: Address, gso: bool = True
) -> int:
    """Send ``datagrams`` in order to ``addr``; return how many went out.

    Stops at the first datagram the kernel would not take (buffer full: wait until writable and
    send the rest). Other errors raise ``OSError`` if nothing was sent yet, else the count is
    returned and the next call meets the error. This twin ignores ``gso`` (one syscall per
    datagram); the receiver sees the same datagrams either way.
    """
    s, detach = _as_socket(sock)
    sent = 0
    try:
        dest = _sendto_address(s.family, addr)
        _check_datagrams(datagrams)
        n = len(datagrams)
        while sent < n:
            try:
                s.sendto(datagrams[sent], _DONTWAIT, dest)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _WOULD_BLOCK or isinstance(exc, BlockingIOError):
                    break
                if sent:
                    break
                raise
            sent += 1
    finally:
        if detach:
            s.detach()
    return sent
