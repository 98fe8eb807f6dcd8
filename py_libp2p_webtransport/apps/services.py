"""The protocols ``py-libp2p-webtransport serve`` offers besides ping and identify.

``/echo/1.0.0`` sends everything back until EOF, then closes; ``/perf/1.0.0`` is in ``perf.py``.
"""

from __future__ import annotations

from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamEOF

from .perf import PERF_PROTOCOL, perf_handler

ECHO_PROTOCOL = TProtocol("/echo/1.0.0")
_ECHO_READ = 1 << 20


async def echo_handler(stream: INetStream) -> None:
    """Echo everything back until EOF, then close; reset on any error."""
    try:
        while True:
            try:
                chunk = await stream.read(_ECHO_READ)
            except StreamEOF:  # how py-libp2p's muxers (and ours) signal the peer's FIN
                break
            await stream.write(chunk)
        await stream.close()
    except Exception:
        await stream.reset()


def register_handlers(host: IHost) -> None:
    """Serve ``/perf/1.0.0`` and ``/echo/1.0.0`` on ``host``."""
    host.set_stream_handler(PERF_PROTOCOL, perf_handler)
    host.set_stream_handler(ECHO_PROTOCOL, echo_handler)
