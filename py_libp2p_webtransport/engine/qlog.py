"""qlog on demand: one JSON-SEQ file per QUIC connection, for both engines.

qh3 and aioquic share aioquic's logger API (``QuicLogger.start_trace``/``end_trace``, a
``QuicLoggerTrace`` whose ``log_event`` the connection calls), but their own file logger keeps
every event in memory and writes one JSON document when the connection ends: a crash or an
endpoint shut down before the draining period loses the whole trace. This writer streams each
event as it happens, in the JSON-SEQ form of qlog 0.3 (RFC 7464 records: RS, JSON, LF) that qvis
opens, into ``<dir>/<ODCID>_<client|server>.sqlog`` (quic-go's naming: both ends of a loopback
test share the ODCID). It writes to files synchronously: a debugging aid, not for production.
"""

from __future__ import annotations

import json
import os
import time
from types import ModuleType
from typing import Any

#: RFC 7464 record separator.
RS = "\x1e"
QLOG_VERSION = "0.3"


def qlog_writer(logger_module: ModuleType, directory: str) -> Any:
    """A ``quic_logger`` for ``logger_module`` (``qh3.quic.logger`` or ``aioquic.quic.logger``)
    that writes one ``.sqlog`` file per connection into ``directory`` (created if missing)."""
    os.makedirs(directory, exist_ok=True)
    base_trace: Any = logger_module.QuicLoggerTrace
    base_logger: Any = logger_module.QuicLogger

    class StreamingTrace(base_trace):  # type: ignore[misc]
        def __init__(self, *, is_client: bool, odcid: bytes) -> None:
            super().__init__(is_client=is_client, odcid=odcid)
            role = "client" if is_client else "server"
            # Event times are milliseconds since the trace began (qlog's default "relative"
            # format, as quic-go and quiche write it); reference_time is that start, Unix ms.
            self._reference = time.time()
            path = os.path.join(directory, f"{odcid.hex()}_{role}.sqlog")
            # Line-buffered: every event reaches the file even if the connection never ends.
            self._file = open(path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._record(
                {
                    "qlog_version": QLOG_VERSION,
                    "qlog_format": "JSON-SEQ",
                    "title": f"py-libp2p-webtransport {role}",
                    "trace": {
                        "common_fields": {
                            "ODCID": odcid.hex(),
                            "reference_time": self._reference * 1000.0,
                            "time_format": "relative",
                        },
                        "vantage_point": self._vantage_point,
                    },
                }
            )

        def log_event(self, *, category: str, event: str, data: dict[str, Any]) -> None:
            self._record(
                {
                    "time": (time.time() - self._reference) * 1000.0,
                    "name": f"{category}:{event}",
                    "data": data,
                }
            )

        def _record(self, record: dict[str, Any]) -> None:
            if not self._file.closed:
                self._file.write(RS + json.dumps(record, separators=(",", ":")) + "\n")

        def close(self) -> None:
            self._file.close()

    class StreamingLogger(base_logger):  # type: ignore[misc]
        def start_trace(self, is_client: bool, odcid: bytes) -> Any:
            return StreamingTrace(is_client=is_client, odcid=odcid)  # not kept: no memory

        def end_trace(self, trace: Any) -> None:
            trace.close()

    return StreamingLogger()
