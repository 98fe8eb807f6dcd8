"""Type stub of the compiled twin; the behaviour is documented in ``_udp_py``."""

import socket

__all__ = [
    "IMPLEMENTATION",
    "Address",
    "enable_gro",
    "gso_supported",
    "recv_batch",
    "send_batch",
]

IMPLEMENTATION: str

Address = tuple[str, int] | tuple[str, int, int, int]

def gso_supported(sock: socket.socket | int) -> bool: ...
def enable_gro(sock: socket.socket | int) -> bool: ...
def recv_batch(
    sock: socket.socket | int, max_datagrams: int = 64, bufsize: int = 65536
) -> list[tuple[bytes, Address]]: ...
def send_batch(
    sock: socket.socket | int,
    datagrams: list[bytes] | list[bytes | bytearray | memoryview],
    addr: Address,
    gso: bool = True,
) -> int: ...
