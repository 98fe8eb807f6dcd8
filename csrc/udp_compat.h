/* Portable batched-UDP primitives for _udp_c.pyx.
 *
 * Linux: the real recvmmsg/sendmmsg, UDP_GRO control messages in, UDP_SEGMENT (GSO) out.
 * Other POSIX systems (macOS, BSD): recvmmsg/sendmmsg emulated with one recvmsg/sendmsg per
 * message; no offload. Windows: emulated with recvfrom/sendto (one buffer per message, so no
 * offload); the socket must be non-blocking since there is no MSG_DONTWAIT.
 * Every function returns like its POSIX namesake and leaves the error in pw_errno().
 */
#ifndef PW_UDP_COMPAT_H
#define PW_UDP_COMPAT_H

/* recvmmsg/sendmmsg are GNU extensions (Python.h already asks for them in the extension). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdint.h>
#include <string.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#ifdef _MSC_VER
#pragma comment(lib, "ws2_32.lib")
#endif
#else
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#endif

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef EWOULDBLOCK
#define EWOULDBLOCK EAGAIN
#endif
#ifndef EOPNOTSUPP
#define EOPNOTSUPP ENOTSUP
#endif

#if defined(__linux__)
#define PW_IS_LINUX 1
#else
#define PW_IS_LINUX 0
#endif

#ifdef _WIN32
/* Just enough of the POSIX message structures for the emulation below. */
typedef unsigned short sa_family_t;
struct iovec {
    void *iov_base;
    size_t iov_len;
};
struct msghdr {
    void *msg_name;
    socklen_t msg_namelen;
    struct iovec *msg_iov;
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
};
#define MSG_DONTWAIT 0
#define PW_CTL_SPACE 24
#else
#define PW_CTL_SPACE CMSG_SPACE(sizeof(int))
#endif

#if PW_IS_LINUX
#define pw_mmsghdr mmsghdr
#else
struct pw_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
#endif

static int pw_errno(void)
{
#ifdef _WIN32
    int e = WSAGetLastError();
    switch (e) {
    case WSAEWOULDBLOCK: return EWOULDBLOCK;
    case WSAEINTR: return EINTR;
    case WSAEMSGSIZE: return EMSGSIZE;
    case WSAEAFNOSUPPORT: return EAFNOSUPPORT;
    case WSAENOTSOCK: return EBADF;
    default: return e;
    }
#else
    return errno;
#endif
}

static int pw_would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

#if PW_IS_LINUX
static int pw_recvmmsg(int fd, struct pw_mmsghdr *m, unsigned int n, int flags)
{
    return recvmmsg(fd, m, n, flags, NULL);
}

static int pw_sendmmsg(int fd, struct pw_mmsghdr *m, unsigned int n, int flags)
{
    return sendmmsg(fd, m, n, flags);
}
#else
static int pw_recvmmsg(int fd, struct pw_mmsghdr *m, unsigned int n, int flags)
{
    unsigned int i;
    for (i = 0; i < n; i++) {
#ifdef _WIN32
        struct msghdr *h = &m[i].msg_hdr;
        int namelen = (int)h->msg_namelen;
        int r = recvfrom((SOCKET)fd, (char *)h->msg_iov[0].iov_base, (int)h->msg_iov[0].iov_len,
                         0, (struct sockaddr *)h->msg_name, &namelen);
        (void)flags;
        h->msg_namelen = namelen;
        h->msg_controllen = 0;
#else
        ssize_t r = recvmsg(fd, &m[i].msg_hdr, flags);
#endif
        if (r < 0) return i ? (int)i : -1;
        m[i].msg_len = (unsigned int)r;
    }
    return (int)n;
}

static int pw_sendmmsg(int fd, struct pw_mmsghdr *m, unsigned int n, int flags)
{
    unsigned int i;
    for (i = 0; i < n; i++) {
#ifdef _WIN32
        /* Without offload every message holds exactly one datagram (one iovec). */
        struct msghdr *h = &m[i].msg_hdr;
        int r = sendto((SOCKET)fd, (const char *)h->msg_iov[0].iov_base,
                       (int)h->msg_iov[0].iov_len, 0, (const struct sockaddr *)h->msg_name,
                       (int)h->msg_namelen);
        (void)flags;
#else
        ssize_t r = sendmsg(fd, &m[i].msg_hdr, flags);
#endif
        if (r < 0) return i ? (int)i : -1;
        m[i].msg_len = (unsigned int)r;
    }
    return (int)n;
}
#endif

/* The GRO segment size of a received message, or 0 (one datagram). */
static int pw_gro_size(struct msghdr *h)
{
#if PW_IS_LINUX
    struct cmsghdr *c;
    int v;
    if (h->msg_controllen == 0) return 0;
    for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            memcpy(&v, CMSG_DATA(c), sizeof(int));
            return v;
        }
    }
#else
    (void)h;
#endif
    return 0;
}

/* Ask the kernel to cut this message's payload into `seg`-byte datagrams (GSO). */
static void pw_set_gso(struct msghdr *h, char *ctl, uint16_t seg)
{
#if PW_IS_LINUX
    struct cmsghdr *c;
    memset(ctl, 0, PW_CTL_SPACE);
    h->msg_control = ctl;
    h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    c = CMSG_FIRSTHDR(h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &seg, sizeof(uint16_t));
#else
    (void)h;
    (void)ctl;
    (void)seg;
#endif
}

static int pw_gso_probe(int fd)
{
#if PW_IS_LINUX
    int v = 0;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &len) == 0;
#else
    (void)fd;
    return 0;
#endif
}

static int pw_gro_enable(int fd)
{
#if PW_IS_LINUX
    int one = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0;
#else
    (void)fd;
    return 0;
#endif
}

#endif /* PW_UDP_COMPAT_H */
