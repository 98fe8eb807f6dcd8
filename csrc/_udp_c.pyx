# cython: language_level=3
"""Batched UDP I/O on a non-blocking socket: the compiled twin of ``_udp_py``.

Receives with ``recvmmsg`` (up to 64 datagrams per syscall) and splits receive-offload (GRO)
buffers into their datagrams; sends with one ``sendmmsg`` per batch where each message is either
one datagram or, with ``gso``, a run of equal-size datagrams (the last may be shorter) that the
kernel segments (``UDP_SEGMENT``). Where a platform lacks the ``mmsg`` calls they are emulated with
``recvmsg``/``sendmsg`` loops. Behaviour, names and errors match ``_udp_py`` exactly.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memcmp, memcpy, memset

import errno as _errno
import os as _os

__all__ = [
    "IMPLEMENTATION",
    "Address",
    "enable_gro",
    "gso_supported",
    "recv_batch",
    "send_batch",
]

IMPLEMENTATION = "cython"

Address = tuple[str, int] | tuple[str, int, int, int]

cdef extern from "udp_compat.h":
    int PW_IS_LINUX
    int PW_CTL_SPACE
    int EINTR
    int EIO
    int EINVAL
    int EMSGSIZE
    int ENOPROTOOPT
    int EOPNOTSUPP
    int AF_INET
    int AF_INET6
    int MSG_DONTWAIT
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    ctypedef unsigned short uint16_t

    struct iovec:
        void *iov_base
        size_t iov_len

    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags

    struct pw_mmsghdr:  # struct mmsghdr where the kernel has it
        msghdr msg_hdr
        unsigned int msg_len

    struct sockaddr:
        sa_family_t sa_family

    struct sockaddr_storage:
        sa_family_t ss_family

    struct in_addr:
        pass

    struct in6_addr:
        unsigned char s6_addr[16]

    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr

    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        unsigned int sin6_flowinfo
        in6_addr sin6_addr
        unsigned int sin6_scope_id

    int pw_recvmmsg(int fd, pw_mmsghdr *msgs, unsigned int vlen, int flags)
    int pw_sendmmsg(int fd, pw_mmsghdr *msgs, unsigned int vlen, int flags)
    int getsockname(int fd, sockaddr *addr, socklen_t *len)
    int inet_pton(int af, const char *src, void *dst)
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    unsigned int htonl(unsigned int)
    unsigned int ntohl(unsigned int)

    int pw_errno()
    int pw_would_block(int e)
    int pw_gro_size(msghdr *h)
    void pw_set_gso(msghdr *h, char *ctl, uint16_t seg)
    int pw_gso_probe(int fd)
    int pw_gro_enable(int fd)

cdef enum:
    BATCH = 64  # messages per recvmmsg/sendmmsg call
    GSO_MAX_SEGS = 64  # UDP_MAX_SEGMENTS on older kernels
    GSO_MAX_BYTES = 65507  # largest UDP payload over IPv4
    CTL_WORDS = 4  # 32 bytes of 8-aligned control space per message (>= PW_CTL_SPACE)

# One receive area reused across calls: BATCH slots of `_slot` bytes (grown on demand).
cdef char *_rbuf = NULL
cdef size_t _slot = 0
cdef bint _rbusy = False


cdef int _fileno(object sock) except -1:
    cdef long fd
    if isinstance(sock, int):
        fd = sock
        if fd < 0:
            raise ValueError(f"invalid file descriptor {sock}")
        return <int>fd
    try:
        fileno = sock.fileno
    except AttributeError:
        raise TypeError(f"expected a socket or a file descriptor, got {type(sock).__name__}") from None
    return <int>fileno()


cdef int _family(object sock, int fd) except -1:
    cdef sockaddr_storage ss
    cdef socklen_t n = sizeof(ss)
    fam = getattr(sock, "family", None)
    if fam is not None:
        return <int>fam
    if getsockname(fd, <sockaddr *>&ss, &n) != 0:
        _raise_errno()
    return ss.ss_family


cdef int _raise_errno() except -1:
    cdef int e = pw_errno()
    raise OSError(e, _os_strerror(e))


def _os_strerror(int e):
    return _os.strerror(e)


cdef object _to_address(sockaddr_storage *ss):
    """sockaddr -> the tuple socket.recvfrom would return."""
    cdef char text[64]
    cdef sockaddr_in *a4
    cdef sockaddr_in6 *a6
    if ss.ss_family == AF_INET:
        a4 = <sockaddr_in *>ss
        inet_ntop(AF_INET, &a4.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(a4.sin_port))
    if ss.ss_family == AF_INET6:
        a6 = <sockaddr_in6 *>ss
        inet_ntop(AF_INET6, &a6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(a6.sin6_port), ntohl(a6.sin6_flowinfo), a6.sin6_scope_id)
    return None


cdef socklen_t _from_address(object addr, int family, sockaddr_storage *ss) except 0:
    """Numeric address tuple -> sockaddr for a socket of ``family`` (IPv4 maps into IPv6)."""
    cdef sockaddr_in *a4 = <sockaddr_in *>ss
    cdef sockaddr_in6 *a6 = <sockaddr_in6 *>ss
    cdef bytes hb
    cdef bint v6
    cdef long port
    if not isinstance(addr, tuple) or len(addr) not in (2, 4):
        raise ValueError(f"address must be (host, port) or (host, port, flowinfo, scope_id): {addr!r}")
    host = addr[0]
    port_obj = addr[1]
    if not isinstance(host, str) or not isinstance(port_obj, int):
        raise ValueError(f"address must be (str, int, ...): {addr!r}")
    if not 0 <= port_obj <= 0xFFFF:
        raise ValueError(f"port out of range: {port_obj}")
    port = port_obj
    v6 = ":" in host
    if len(addr) == 4:
        if not v6:
            raise ValueError(f"a 4-tuple address must be IPv6: {addr!r}")
        flowinfo, scope_id = addr[2], addr[3]
        if not isinstance(flowinfo, int) or not 0 <= flowinfo <= 0xFFFFF:
            raise ValueError(f"flowinfo must be an int in 0..0xfffff: {addr!r}")
        if not isinstance(scope_id, int) or not 0 <= scope_id <= 0xFFFFFFFF:
            raise ValueError(f"scope_id must be an int in 0..0xffffffff: {addr!r}")
    try:
        hb = host.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"not a numeric IP address: {host!r}") from None
    if b"\0" in hb:
        raise ValueError(f"not a numeric IP address: {host!r}")
    memset(ss, 0, sizeof(sockaddr_storage))
    if family == AF_INET6:
        a6.sin6_family = AF_INET6
        a6.sin6_port = htons(<uint16_t>port)
        if v6:
            if inet_pton(AF_INET6, hb, &a6.sin6_addr) != 1:
                raise ValueError(f"not a numeric IP address: {host!r}")
            if len(addr) == 4:
                a6.sin6_flowinfo = htonl(<unsigned int>flowinfo)
                a6.sin6_scope_id = <unsigned int>scope_id
        else:
            # IPv4 literal on an IPv6 socket: send to its v4-mapped form (::ffff:a.b.c.d).
            if inet_pton(AF_INET, hb, &a6.sin6_addr.s6_addr[12]) != 1:
                raise ValueError(f"not a numeric IP address: {host!r}")
            a6.sin6_addr.s6_addr[10] = 0xFF
            a6.sin6_addr.s6_addr[11] = 0xFF
        return sizeof(sockaddr_in6)
    if v6:
        if inet_pton(AF_INET6, hb, &a6.sin6_addr) != 1:
            raise ValueError(f"not a numeric IP address: {host!r}")
        raise OSError(_errno.EAFNOSUPPORT, _os.strerror(_errno.EAFNOSUPPORT))
    a4.sin_family = AF_INET
    a4.sin_port = htons(<uint16_t>port)
    if inet_pton(AF_INET, hb, &a4.sin_addr) != 1:
        raise ValueError(f"not a numeric IP address: {host!r}")
    return sizeof(sockaddr_in)


def gso_supported(sock) -> bool:
    """Whether the kernel can segment sends on this socket (``UDP_SEGMENT``, Linux >= 4.18)."""
    return bool(pw_gso_probe(_fileno(sock)))


def enable_gro(sock) -> bool:
    """Switch on receive offload (``UDP_GRO``); ``recv_batch`` then splits coalesced buffers.

    Returns False where the kernel has no GRO for UDP (nothing changes then).
    """
    return bool(pw_gro_enable(_fileno(sock)))


def recv_batch(sock, int max_datagrams=64, int bufsize=65536):
    """Read datagrams until the socket would block or ``max_datagrams`` were read.

    A coalesced GRO buffer counts as one read and yields all its datagrams. Returns ``[]`` when
    nothing is waiting. Socket errors other than "would block" propagate as ``OSError`` unless
    some datagrams were already read (they are returned; the next call sees the error again).
    """
    global _rbuf, _slot, _rbusy
    cdef int fd
    cdef char *buf
    cdef bint own
    if max_datagrams < 1:
        raise ValueError(f"max_datagrams must be >= 1, got {max_datagrams}")
    if not 1 <= bufsize <= 1 << 20:
        raise ValueError(f"bufsize must be in 1..1048576, got {bufsize}")
    fd = _fileno(sock)
    # Reuse the module's receive area (grown on demand) unless another call holds it.
    own = _rbusy
    if own:
        buf = <char *>PyMem_Malloc(<size_t>bufsize * BATCH)
        if buf == NULL:
            raise MemoryError()
    else:
        if <size_t>bufsize > _slot:
            PyMem_Free(_rbuf)
            _slot = 0
            _rbuf = <char *>PyMem_Malloc(<size_t>bufsize * BATCH)
            if _rbuf == NULL:
                raise MemoryError()
            _slot = bufsize
        buf = _rbuf
        _rbusy = True
    try:
        return _recv_into(fd, buf, bufsize, max_datagrams)
    finally:
        if own:
            PyMem_Free(buf)
        else:
            _rbusy = False


cdef list _recv_into(int fd, char *buf, int bufsize, int max_datagrams):
    cdef pw_mmsghdr msgs[BATCH]
    cdef iovec iov[BATCH]
    cdef sockaddr_storage names[BATCH]
    cdef unsigned long long ctl[BATCH][CTL_WORDS]
    cdef sockaddr_storage last_name
    cdef int i, n, want, seg, e, off, length
    cdef int reads = 0
    cdef list out = []
    last_addr = None
    while reads < max_datagrams:
        want = min(BATCH, max_datagrams - reads)
        for i in range(want):
            iov[i].iov_base = buf + <size_t>i * bufsize
            iov[i].iov_len = bufsize
            memset(&msgs[i], 0, sizeof(pw_mmsghdr))
            msgs[i].msg_hdr.msg_name = &names[i]
            msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage)
            msgs[i].msg_hdr.msg_iov = &iov[i]
            msgs[i].msg_hdr.msg_iovlen = 1
            msgs[i].msg_hdr.msg_control = <char *>ctl[i]
            msgs[i].msg_hdr.msg_controllen = PW_CTL_SPACE
        n = pw_recvmmsg(fd, msgs, want, MSG_DONTWAIT)
        if n < 0:
            e = pw_errno()
            if e == EINTR:
                continue
            if pw_would_block(e) or out:
                break
            _raise_errno()
        for i in range(n):
            # Datagrams of one batch mostly share a sender: reuse its address tuple.
            if last_addr is None or memcmp(&last_name, &names[i], msgs[i].msg_hdr.msg_namelen) != 0:
                memcpy(&last_name, &names[i], msgs[i].msg_hdr.msg_namelen)
                last_addr = _to_address(&names[i])
            length = msgs[i].msg_len
            seg = pw_gro_size(&msgs[i].msg_hdr)
            if 0 < seg < length:
                off = 0
                while off < length:
                    out.append((PyBytes_FromStringAndSize(<char *>iov[i].iov_base + off,
                                                          min(seg, length - off)), last_addr))
                    off += seg
            else:
                out.append((PyBytes_FromStringAndSize(<char *>iov[i].iov_base, length), last_addr))
        reads += n
        if n < want:
            break  # the socket is drained
    return out


cdef inline bint _is_datagram(object d):
    return isinstance(d, (bytes, bytearray, memoryview))


def send_batch(sock, datagrams, addr, bint gso=True) -> int:
    """Send ``datagrams`` in order to ``addr``; return how many went out.

    Stops at the first datagram the kernel would not take (buffer full: wait until writable and
    send the rest). Other errors raise ``OSError`` if nothing was sent yet, else the count is
    returned and the next call meets the error. With ``gso`` (and kernel support) runs of
    equal-size datagrams leave as one segmented message; the receiver sees the same datagrams.
    """
    cdef int fd
    cdef sockaddr_storage dest
    cdef socklen_t destlen
    cdef Py_ssize_t n, i
    cdef list items
    fd = _fileno(sock)
    destlen = _from_address(addr, _family(sock, fd), &dest)
    items = list(datagrams)
    n = len(items)
    for i in range(n):
        d = items[i]
        if not isinstance(d, bytes):
            if not _is_datagram(d):
                raise TypeError(f"a bytes-like object is required, not {type(d).__name__!r}")
            items[i] = bytes(d)
    if n == 0:
        return 0
    return _send_items(fd, items, n, &dest, destlen, gso and PW_IS_LINUX)


cdef Py_ssize_t _send_items(int fd, list items, Py_ssize_t n, sockaddr_storage *dest,
                            socklen_t destlen, bint gso) except -1:
    cdef iovec *iov = <iovec *>PyMem_Malloc(sizeof(iovec) * n)
    cdef Py_ssize_t *first = <Py_ssize_t *>PyMem_Malloc(sizeof(Py_ssize_t) * (n + 1))
    cdef pw_mmsghdr msgs[BATCH]
    cdef unsigned long long ctl[BATCH][CTL_WORDS]
    cdef Py_ssize_t i, j, size, m, sent = 0, msg_at = 0, count, total
    cdef int r, e, k, want
    cdef bytes b
    if iov == NULL or first == NULL:
        PyMem_Free(iov)
        PyMem_Free(first)
        raise MemoryError()
    try:
        for i in range(n):
            b = <bytes>items[i]
            iov[i].iov_base = PyBytes_AS_STRING(b)
            iov[i].iov_len = PyBytes_GET_SIZE(b)
        while True:
            # Group datagrams [sent:] into messages: first[k] is the first datagram of message k.
            m = 0
            i = sent
            while i < n and m < BATCH:
                first[m] = i
                size = iov[i].iov_len
                j = i + 1
                if gso and size > 0:
                    total = size
                    while (j < n and j - i < GSO_MAX_SEGS and 0 < iov[j].iov_len <= <size_t>size
                           and total + <Py_ssize_t>iov[j].iov_len <= GSO_MAX_BYTES):
                        total += iov[j].iov_len
                        j += 1
                        if iov[j - 1].iov_len < <size_t>size:
                            break  # a shorter datagram ends the run
                memset(&msgs[m], 0, sizeof(pw_mmsghdr))
                msgs[m].msg_hdr.msg_name = dest
                msgs[m].msg_hdr.msg_namelen = destlen
                msgs[m].msg_hdr.msg_iov = &iov[i]
                msgs[m].msg_hdr.msg_iovlen = j - i
                if j - i > 1:
                    pw_set_gso(&msgs[m].msg_hdr, <char *>ctl[m], <uint16_t>size)
                m += 1
                i = j
            first[m] = i
            if m == 0:
                return sent
            r = pw_sendmmsg(fd, msgs, m, MSG_DONTWAIT)
            if r < 0:
                e = pw_errno()
                if e == EINTR:
                    continue
                if gso and msgs[0].msg_hdr.msg_iovlen > 1 and (
                    e == EIO or e == EINVAL or e == EMSGSIZE or e == ENOPROTOOPT or e == EOPNOTSUPP
                ):
                    gso = False  # no offload on this path: redo the batch one datagram per message
                    continue
                if pw_would_block(e) or sent:
                    return sent
                _raise_errno()
            sent = first[r]
            if sent >= n:
                return sent
    finally:
        PyMem_Free(iov)
        PyMem_Free(first)
