"""QUIC engine adapters: pick one by name, get a ``QuicEngine``.

``create_engine("qh3" | "aioquic", config)`` imports the adapter lazily, so an uninstalled engine
costs nothing until it is asked for. Servers pass the destination connection id of the client's
first Initial packet as ``original_destination_connection_id`` and, after a Retry (``retry.py``),
the source connection id of that Retry as ``retry_source_connection_id``: both go into the
server's transport parameters (RFC 9000 §7.3).

The contract (every method, property and rule both adapters keep) is ``QuicEngine`` in
``base.py``.
"""

from __future__ import annotations

import importlib
import importlib.util

from .._errors import EngineError
from .base import (
    Address,
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    DatagramReceived,
    EngineConfig,
    EngineEvent,
    EngineStats,
    HandshakeCompleted,
    QuicEngine,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

# Provisional: qh3's native packet core is several times cheaper per packet than aioquic
# (see benchmarks/engine_bare.py); aioquic stays fully supported and tested.
DEFAULT_ENGINE = "qh3"

# engine name -> (adapter module, adapter class, library it needs)
_ENGINES = {
    "qh3": ("qh3", "Qh3Engine", "qh3"),
    "aioquic": ("aioquic", "AioquicEngine", "aioquic"),
}


def available_engines() -> list[str]:
    """Names of the engines whose library is installed, fastest first."""
    return [name for name, (_, _, lib) in _ENGINES.items() if importlib.util.find_spec(lib)]


def create_engine(
    name: str,
    config: EngineConfig,
    *,
    original_destination_connection_id: bytes | None = None,
    retry_source_connection_id: bytes | None = None,
) -> QuicEngine:
    """A new QUIC connection on engine ``name``; ``EngineError`` if unknown or not installed."""
    try:
        module_name, class_name, library = _ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(_ENGINES))
        raise EngineError(f"unknown QUIC engine {name!r} (known engines: {known})") from None
    if importlib.util.find_spec(library) is None:
        raise EngineError(f"QUIC engine {name!r} is not installed (pip install {library})")
    module = importlib.import_module(f"{__name__}.{module_name}")
    engine: QuicEngine = getattr(module, class_name)(
        config,
        original_destination_connection_id=original_destination_connection_id,
        retry_source_connection_id=retry_source_connection_id,
    )
    return engine


__all__ = [
    "DEFAULT_ENGINE",
    "Address",
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ConnectionTerminated",
    "DatagramReceived",
    "EngineConfig",
    "EngineEvent",
    "EngineStats",
    "HandshakeCompleted",
    "QuicEngine",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamReset",
    "available_engines",
    "create_engine",
]
