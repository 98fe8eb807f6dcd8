"""Helpers for end-to-end tests: real py-libp2p hosts over loopback UDP (``tests/libp2p`` is on
sys.path when pytest collects these tests, so test modules import this as ``wt_helpers``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from libp2p import new_host
from libp2p.abc import IHost, ITransport
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.network.stream.exceptions import StreamEOF, StreamReset
from libp2p.peer.peerinfo import PeerInfo
from libp2p.transport.quic.exceptions import QUICStreamClosedError
from libp2p.transport.quic.stream import QUICStream
from multiaddr import Multiaddr

from py_libp2p_webtransport.apps.services import register_handlers
from py_libp2p_webtransport.config import WebTransportConfig
from py_libp2p_webtransport.conn import WebTransportConnection
from py_libp2p_webtransport.endpoint import Endpoint, EndpointOptions
from py_libp2p_webtransport.handshake import EndpointFor, dial_session
from py_libp2p_webtransport.host import new_host as packaged_new_host
from py_libp2p_webtransport.multiaddr import parse_webtransport_multiaddr
from py_libp2p_webtransport.transport import WebTransportTransport

LISTEN_V4 = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"
LISTEN_V6 = "/ip6/::1/udp/0/quic-v1/webtransport"
LISTEN_TCP = "/ip4/127.0.0.1/tcp/0"
README = Path(__file__).resolve().parents[2] / "README.md"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def wt_host(
    engine: str,
    *,
    key_pair: KeyPair | None = None,
    listen: Sequence[str] = (LISTEN_V4,),
    extra_transports: Sequence[ITransport] = (),
    **config: Any,
) -> AsyncIterator[IHost]:
    """A running host with our transport (plus ``extra_transports``), serving echo and perf."""
    kp = key_pair or create_new_key_pair()
    transport = WebTransportTransport(kp.private_key, WebTransportConfig(engine=engine, **config))
    addrs = [Multiaddr(a) for a in listen]
    host = new_host(key_pair=kp, transports=[transport, *extra_transports], listen_addrs=addrs)
    register_handlers(host)
    async with host.run(listen_addrs=addrs):
        try:
            yield host
        finally:
            await transport.close()


@asynccontextmanager
async def packaged_host(
    engine: str,
    *,
    listen: Sequence[str] = (LISTEN_V4, LISTEN_TCP),
    clock: Any = time.time,
    **options: Any,
) -> AsyncIterator[IHost]:
    """A running host from the package's ``new_host`` (TCP + WebTransport, identify fix,
    certhashes, rotation announced), serving echo and perf; ``options`` go to ``new_host``."""
    addrs = [Multiaddr(a) for a in listen]
    config = options.pop("config", None) or WebTransportConfig(engine=engine, clock=clock)
    host = packaged_new_host(listen_addrs=addrs, config=config, **options)
    register_handlers(host)
    async with host.run(listen_addrs=addrs):
        try:
            yield host
        finally:
            await transport_of(host).close()


def readme_host_example() -> str:
    """The first Python block of the README section "Use it in a py-libp2p host"."""
    section = README.read_text().split("## Use it in a py-libp2p host", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's host section has no Python example"
    return match.group(1)


@asynccontextmanager
async def readme_host_running() -> AsyncIterator[tuple[str, str]]:
    """The README's host example as written, in its own process: its printed WebTransport and
    TCP addresses. The process is killed on exit (it sleeps forever)."""
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            lambda task_status: trio.run_process(
                [sys.executable, "-c", readme_host_example()],
                stdout=subprocess.PIPE,
                check=False,
                task_status=task_status,
            )
        )
        assert proc.stdout is not None
        text = b""
        while text.count(b"\n") < 2:  # one WebTransport and one TCP address
            chunk = await proc.stdout.receive_some(4096)
            assert chunk, f"the example exited early: {text!r}"
            text += chunk
        lines = text.decode().splitlines()
        (wt,) = [line for line in lines if "/webtransport/certhash/" in line]
        (tcp,) = [line for line in lines if "/tcp/" in line]
        try:
            yield wt, tcp
        finally:
            nursery.cancel_scope.cancel()  # trio.run_process kills the child when cancelled


@asynccontextmanager
async def client_endpoint(engine: str, host: str = "127.0.0.1") -> AsyncIterator[EndpointFor]:
    """A running client endpoint, as the ``endpoint_for`` of ``handshake.dial_session``.

    An error of the body leaves unwrapped (not in the pump nursery's ExceptionGroup).
    """
    endpoint = await Endpoint.bind(host, 0, EndpointOptions(engine=engine))

    async def endpoint_for(family: int) -> Endpoint:
        return endpoint

    error: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(endpoint.run)
        try:
            yield endpoint_for
        except Exception as exc:
            error = exc
        finally:
            endpoint.close()
    if error is not None:
        raise error


async def dial_many(
    endpoint_for: EndpointFor, engine: str, addr: Multiaddr, count: int
) -> list[WebTransportConnection]:
    """``count`` connections from fresh identities (no py-libp2p host per client)."""
    target = parse_webtransport_multiaddr(addr)
    config = WebTransportConfig(engine=engine)
    engine_config = config.engine_config(is_client=True, server_name=target.sni, certificate=None)
    conns: list[WebTransportConnection] = []
    gate = trio.Semaphore(32)

    async def one() -> None:
        async with gate:
            session = await dial_session(
                endpoint_for,
                target,
                private_key=create_new_key_pair().private_key,
                config=config,
                engine_config=engine_config,
                engine=engine,
            )
            conns.append(session.conn)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return conns


def wt_addrs(host: IHost) -> list[Multiaddr]:
    """The host's WebTransport listen addresses (without /p2p)."""
    return [a for a in host.get_transport_addrs() if "webtransport" in str(a)]


def peer_info(host: IHost, addrs: Sequence[Multiaddr] | None = None) -> PeerInfo:
    """How to reach ``host`` over WebTransport."""
    return PeerInfo(host.get_id(), list(addrs if addrs is not None else wt_addrs(host)))


def transport_of(host: IHost) -> WebTransportTransport:
    """Our transport instance inside ``host``."""
    for t in host.get_network().transport_manager.get_transports():  # type: ignore[attr-defined]
        if isinstance(t, WebTransportTransport):
            return t
    raise LookupError("no WebTransportTransport in host")


async def read_to_end(stream: Any) -> bytes:
    """Everything until the end of the stream (``StreamEOF``: how py-libp2p's muxers and ours
    signal the peer's FIN)."""
    out = bytearray()
    try:
        while chunk := await stream.read(1 << 20):
            out += chunk
    except StreamEOF:
        pass
    except StreamReset as error:
        # py-libp2p 0.8's QUIC (only) raises QUICStreamClosedError, wrapped as StreamReset, from
        # a read once both directions ended with FIN: that is its EOF. Our streams never do.
        if not isinstance(error.__cause__, QUICStreamClosedError):
            raise
    return bytes(out)


async def read_short_reply(stream: Any) -> bytes:
    """A reply that fits in one buffer, read to its end, also from py-libp2p 0.8.1's QUIC.

    Its QUIC reader loses data that arrives together with the FIN while a ``read`` is between its
    two checks: it finds the buffer empty, yields on a lock, and meanwhile the data and the FIN
    arrive; it then sees the FIN flag and reports the end of the stream without the data (its
    ``QUICStream.read``: buffer check, then ``_state_lock``, then ``_read_closed``). Seen in 4 of
    40 runs of the interop identify check. Waiting until the FIN has arrived before the first
    read sidesteps it: the data then sits in the buffer, which ``read`` checks first. Other
    streams are read at once.
    """
    muxed = getattr(stream, "muxed_stream", stream)
    if isinstance(muxed, QUICStream):
        # Their stream has no event for "FIN arrived" that a second waiter may use (its read
        # loop replaces ``_receive_event``): poll the flag, bounded by the caller's deadline.
        while not (muxed._read_closed or muxed.is_reset()):
            await trio.sleep(0.001)
    return await read_to_end(stream)
