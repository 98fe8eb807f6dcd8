"""Interop client on pywebtransport (Rust core; WebTransport draft-15/16), run from its own venv.

pywebtransport needs Python >= 3.12. It sends SETTINGS_WT_ENABLED (0x2c7cf000) and
`:protocol = webtransport-h3`, and refuses a server whose SETTINGS lack 0x2c7cf000. It cannot pin
a certificate hash, so verification is off (libp2p's Noise handshake binds the certificate hash
later). Its API reports a refused CONNECT only as H3_REQUEST_REJECTED; the HTTP status appears in
its Rust debug trace, which this program captures from stderr to report `status`.

Usage: python pywebtransport_client.py --url https://127.0.0.1:PORT/path?query
       [--echo-bidi N]... [--accept-bidi [K]] [--expect-status S] [--timeout T]
Prints one JSON line (see _common.Result); exit status 0 when ok.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
import tempfile
import time
from importlib.metadata import version
from typing import Any

from _common import CLOSE_GRACE, Result, build_parser, check_args, compare_echo, start_watchdog

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# pywebtransport 0.21.1 logs a refused CONNECT as
# `wt_session abort connection_handle=0 err=Some(b"404")`.
_ABORT_STATUS = re.compile(r'wt_session abort .*err=Some\(b"(\d{3})"\)')
_TRACE_NOTE = re.compile(r"validate invalid|validate failed|abort")


class TraceCapture:
    """Divert the process's stderr (where the Rust core's tracing writes) to a temporary file."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.file = tempfile.TemporaryFile()
        self.saved_fd = os.dup(2)
        os.environ["RUST_LOG"] = "_pywebtransport=debug"
        sys.stderr.flush()
        os.dup2(self.file.fileno(), 2)

    def text(self) -> str:
        """Restore stderr; return what was captured (also echoed to stderr with --verbose)."""
        sys.stderr.flush()
        os.dup2(self.saved_fd, 2)
        self.file.seek(0)
        text = _ANSI.sub("", self.file.read().decode("utf-8", "replace"))
        if self.verbose:
            sys.stderr.write(text)
        return text


async def _with_budget(aw: Any, deadline: float, what: str) -> Any:
    """Await `aw` until the overall deadline; raise TimeoutError naming the step."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError(f"no time left for {what}")
    try:
        return await asyncio.wait_for(aw, remaining)
    except TimeoutError:
        raise TimeoutError(f"timed out during {what}") from None


async def run(args: Any, result: Result) -> bool:
    from pywebtransport import ClientConfig, WebTransportClient

    deadline = time.monotonic() + args.timeout
    config = ClientConfig(verify_mode=ssl.CERT_NONE, connect_timeout=args.timeout)
    client = WebTransportClient(config=config)
    actions_ok = True
    try:
        result.phase = "connect"
        try:
            session = await _with_budget(
                client.connect(url=args.url, timeout=args.timeout), deadline, "connect"
            )
        except TimeoutError:
            raise
        except Exception as exc:  # rejected CONNECT, refused SETTINGS, handshake failure
            result.fail(f"{type(exc).__name__}: {exc} (cause: {exc.__cause__!r})")
            return False
        result.connected = True
        result.status = 200  # pywebtransport establishes a session only on a 2xx answer
        try:
            diag = await _with_budget(session.connection.diagnose(), deadline, "diagnose")
            result.observed["peer_settings_received"] = diag.peer_settings_received
            result.observed["peer_initial_max_data"] = diag.peer_initial_max_data
            result.observed["peer_initial_max_streams_bidi"] = diag.peer_initial_max_streams_bidi
            result.observed["peer_initial_max_streams_uni"] = diag.peer_initial_max_streams_uni
            result.observed["peer_max_datagram_frame_size"] = diag.peer_max_datagram_frame_size
            sdiag = await _with_budget(session.diagnose(), deadline, "diagnose")
            result.observed["flow_control_negotiated"] = sdiag.flow_control_negotiated
        except TimeoutError:
            raise
        except Exception as exc:  # diagnostics are informative only
            result.observed["diagnose_error"] = repr(exc)

        for n in args.echo_bidi:
            result.phase = f"echo-bidi {n}"
            payload = os.urandom(n)
            stream = await _with_budget(
                session.create_bidirectional_stream(), deadline, "open stream"
            )
            await _with_budget(stream.write_all(data=payload, end_stream=True), deadline, "write")
            result.bytes_sent += n
            received = await _with_budget(stream.read_all(), deadline, "read echo")
            result.bytes_received += len(received)
            echo = compare_echo(payload, received)
            result.echoes.append(echo)
            if not echo["match"]:
                actions_ok = False
                result.fail(f"echo mismatch: {echo}")

        if args.accept_bidi:
            incoming = session.incoming_bidirectional_streams()
            for i in range(args.accept_bidi):
                result.phase = f"accept-bidi {i + 1}/{args.accept_bidi}"
                stream = await _with_budget(
                    incoming.__anext__(), deadline, "wait for server-opened stream"
                )
                data = await _with_budget(stream.read_all(), deadline, "read server-opened stream")
                result.bytes_received += len(data)
                await _with_budget(
                    stream.write_all(data=data, end_stream=True), deadline, "echo back"
                )
                result.bytes_sent += len(data)
                result.accepted.append(
                    {"stream_id": stream.stream_id, "received": len(data), "echoed": len(data)}
                )
        # Keep the connection up a moment so that the last echo leaves before it closes.
        result.phase = "linger"
        await asyncio.sleep(max(0.0, min(args.linger, deadline - time.monotonic())))
        result.phase = "close"
        await _with_budget(session.close(), deadline + CLOSE_GRACE / 2, "close session")
        result.phase = "done"
        return actions_ok
    finally:
        try:
            await asyncio.wait_for(client.close(), CLOSE_GRACE / 2)
        except Exception:  # closing must never mask the outcome
            pass


def main() -> None:
    parser = build_parser(__doc__ or "")
    args = parser.parse_args()
    check_args(parser, args)
    result = Result(
        client="pywebtransport",
        version=version("pywebtransport"),
        url=args.url,
        expect_status=args.expect_status,
    )
    start_watchdog(result, args.timeout + CLOSE_GRACE)
    capture = TraceCapture(args.verbose)
    from pywebtransport import _pywebtransport

    _pywebtransport.init_tracing()
    actions_ok = False
    try:
        actions_ok = asyncio.run(run(args, result))
    except TimeoutError as exc:
        result.fail(str(exc) or f"timed out after {args.timeout} s")
    except Exception as exc:
        result.fail(f"{type(exc).__name__}: {exc}")
    trace = capture.text()
    match = _ABORT_STATUS.search(trace)
    if match and not result.connected:
        result.status = int(match.group(1))
    # Keep the core's own account of a failure
    # (e.g. `h3_settings validate invalid expected=wt_enabled`).
    notes = [line.split(": ", 1)[-1] for line in trace.splitlines() if _TRACE_NOTE.search(line)]
    if notes:
        result.observed["trace"] = notes[:8]
    result.finish(actions_ok)
    result.emit()


if __name__ == "__main__":
    main()
