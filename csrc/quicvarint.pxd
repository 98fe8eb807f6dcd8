# QUIC variable-length integers (RFC 9000 §16) as C inline helpers, shared by the compiled twins.
#
# Only `cdef inline` definitions live here: a .pxd cimported by several modules may not declare
# functions implemented elsewhere. Callers check ranges before writing (values <= QUICVARINT_MAX).

from libc.stdint cimport uint64_t

cdef extern from *:
    """
    #define QUICVARINT_MAX 0x3FFFFFFFFFFFFFFFULL
    """
    # 2**62 - 1, the largest value a varint can carry.
    const uint64_t QUICVARINT_MAX


cdef inline int varint_len(uint64_t value) noexcept nogil:
    """Bytes of the shortest encoding of `value` (which must be <= QUICVARINT_MAX)."""
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    return 8


cdef inline unsigned char* write_varint(unsigned char* p, uint64_t value, int size) noexcept nogil:
    """Write `value` as a `size`-byte varint at `p`; return the pointer after it."""
    if size == 1:
        p[0] = <unsigned char>value
    elif size == 2:
        p[0] = <unsigned char>(0x40 | (value >> 8))
        p[1] = <unsigned char>value
    elif size == 4:
        p[0] = <unsigned char>(0x80 | (value >> 24))
        p[1] = <unsigned char>(value >> 16)
        p[2] = <unsigned char>(value >> 8)
        p[3] = <unsigned char>value
    else:
        p[0] = <unsigned char>(0xC0 | (value >> 56))
        p[1] = <unsigned char>(value >> 48)
        p[2] = <unsigned char>(value >> 40)
        p[3] = <unsigned char>(value >> 32)
        p[4] = <unsigned char>(value >> 24)
        p[5] = <unsigned char>(value >> 16)
        p[6] = <unsigned char>(value >> 8)
        p[7] = <unsigned char>value
    return p + size


cdef inline Py_ssize_t read_varint(
    const unsigned char* p, Py_ssize_t n, Py_ssize_t pos, uint64_t* out
) noexcept nogil:
    """Decode the varint at `p[pos]` (of `n` bytes) into `out`; return the new position,
    or -1 if the buffer ends first. Non-shortest encodings are valid (RFC 9000 §16)."""
    cdef Py_ssize_t end
    cdef uint64_t value
    if pos < 0 or pos >= n:
        return -1
    end = pos + (1 << (p[pos] >> 6))
    if end > n:
        return -1
    value = p[pos] & 0x3F
    pos += 1
    while pos < end:
        value = (value << 8) | p[pos]
        pos += 1
    out[0] = value
    return end
