"""Headless Chromium (real zero-length client CIDs) against each engine, without libp2p.

A bare WebTransport page (``new WebTransport`` with ``serverCertificateHashes``) echoes 1 MiB on
one bidirectional stream through our session layer and engine; it reports back over plain HTTP.
This is the real-browser proof of ``engine/qh3/zero_length_cid.py`` (the aioquic imitation lives in
``test_zero_length_cid.py``), and shows that stock qh3 fails with Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from support.enginepair import ServerCertificate, initial_dcid, make_certificate

from py_libp2p_webtransport.engine import (
    ConnectionTerminated,
    EngineConfig,
    QuicEngine,
    create_engine,
)
from py_libp2p_webtransport.engine.qh3 import zero_length_cid
from py_libp2p_webtransport.session import events as sev
from py_libp2p_webtransport.session.connection import WebTransportH3

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]
ECHO_BYTES = 1024 * 1024
PAGE = """<!doctype html><script>
(async () => {
  const report = (r) => fetch("/result?" + new URLSearchParams(r));
  try {
    const hash = Uint8Array.from(atob("%(hash)s"), (c) => c.charCodeAt(0));
    const wt = new WebTransport("%(url)s",
      { serverCertificateHashes: [{ algorithm: "sha-256", value: hash }] });
    await wt.ready;
    const stream = await wt.createBidirectionalStream();
    const sent = new Uint8Array(%(size)d).map((_, i) => (i * 7) & 255);
    const writer = stream.writable.getWriter();
    writer.write(sent).then(() => writer.close());
    const reader = stream.readable.getReader();
    let got = 0, exact = true;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (let i = 0; i < value.length; i++) exact &&= value[i] === sent[got + i];
      got += value.length;
    }
    await report({ ok: "1", received: String(got), exact: String(exact) });
    wt.close();
  } catch (e) {
    await report({ ok: "0", error: String(e) });
  }
})();
</script>"""


class _Results(http.server.BaseHTTPRequestHandler):
    page = b""
    results: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/result":
            self.results.append(dict(urllib.parse.parse_qsl(url.query)))
            body = b"ok"
        else:
            body = self.page
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def page_server(page: str) -> Iterator[tuple[int, list[dict[str, str]]]]:
    handler = type("Handler", (_Results,), {"page": page.encode(), "results": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.results
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium(url: str) -> Iterator[None]:
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="engine-chromium-")
    args = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        url,
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group we started (its own session)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def serve_one_session(
    sock: socket.socket,
    engine: str,
    cert: ServerCertificate,
    results: list[dict[str, str]],
    deadline: float,
) -> list[object]:
    """Run one server connection until the page reports (or the deadline); return its events."""
    config = EngineConfig(
        is_client=False, certificate_der=cert.certificate_der, private_key_der=cert.private_key_der
    )
    quic: QuicEngine | None = None
    h3: WebTransportH3 | None = None
    seen: list[object] = []
    while not results and time.monotonic() < deadline:
        timers = [t for t in (quic and quic.get_timer(), h3 and h3.get_timer()) if t]
        timeout = min([0.05, *(max(0.0, t - time.monotonic()) for t in timers)])
        select.select([sock], [], [], timeout)
        now = time.monotonic()
        batch, addr = [], None
        while True:
            try:
                data, addr = sock.recvfrom(65536)
            except BlockingIOError:
                break
            batch.append(data)
        if batch and quic is None:
            quic = create_engine(
                engine, config, original_destination_connection_id=initial_dcid(batch[0])
            )
            h3 = WebTransportH3(quic, is_client=False)
            h3.initialize(now)
        if quic is None or h3 is None:
            continue
        if not seen:
            seen.append(quic)  # first item: the quic itself, for inspection
        if batch:
            quic.receive_datagrams(batch, addr, now)
        for timer, handle in ((quic.get_timer(), quic.handle_timer),):
            if timer is not None and timer <= now:
                handle(now)
        session_timer = h3.get_timer()
        if session_timer is not None and session_timer <= now:
            h3.handle_timer(now)
        while (event := quic.next_event()) is not None:
            seen.append(event)
            h3.handle_engine_event(event, now)
        while (session_event := h3.next_event()) is not None:
            seen.append(session_event)
            if isinstance(session_event, sev.SessionRequested):
                h3.accept_session(session_event.session_id)
            elif isinstance(session_event, sev.StreamDataReceived):
                h3.consume(session_event.stream_id, len(session_event.data))
                h3.send_stream_data(
                    session_event.stream_id, session_event.data, session_event.end_stream
                )
        for data, to in quic.datagrams_to_send(now):
            try:
                sock.sendto(data, to[:2])
            except BlockingIOError:
                pass
    return seen


def run_chromium_echo(engine: str, timeout: float) -> tuple[list[dict[str, str]], list[object]]:
    cert = make_certificate()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    digest = hashlib.sha256(cert.certificate_der).digest()
    page = PAGE % {
        "hash": base64.b64encode(digest).decode(),
        "url": f"https://127.0.0.1:{port}/.well-known/libp2p-webtransport?type=noise",
        "size": ECHO_BYTES,
    }
    with page_server(page) as (http_port, results), chromium(f"http://localhost:{http_port}/"):
        seen = serve_one_session(sock, engine, cert, results, time.monotonic() + timeout)
    sock.close()
    return results, seen


@pytest.mark.parametrize("engine", ["qh3", "aioquic"])
def test_chromium_echoes_1mib_through_the_engine(engine: str) -> None:
    results, seen = run_chromium_echo(engine, timeout=60)
    assert results, "the page never reported"
    assert results[0] == {"ok": "1", "received": str(ECHO_BYTES), "exact": "true"}, results
    quic = seen[0]
    if engine == "qh3":  # Chromium really used a zero-length CID: the workaround ran
        assert quic._quic.wt_zero_length_peer_cid is True  # type: ignore[attr-defined]


def test_chromium_fails_against_qh3_without_the_workaround(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zero_length_cid, "prepare_server", lambda conn, data: None)
    results, seen = run_chromium_echo("qh3", timeout=15)
    assert not results or results[0]["ok"] == "0", results
    terminated = [e for e in seen if isinstance(e, ConnectionTerminated)]
    assert any("initial_source_connection_id does not match" in e.reason for e in terminated)
