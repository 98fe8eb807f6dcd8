"""The README's host example, run as written in its own process, prints addresses a peer dials."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr
from support.wt_helpers import packaged_host

from py_libp2p_webtransport.conn import WebTransportConnection

README = Path(__file__).resolve().parents[2] / "README.md"


def host_example() -> str:
    """The first Python block of the README section "Use it in a py-libp2p host"."""
    section = README.read_text().split("## Use it in a py-libp2p host", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's host section has no Python example"
    return match.group(1)


async def test_readme_host_example_prints_dialable_addresses(engine: str) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(
                lambda task_status: trio.run_process(
                    [sys.executable, "-c", host_example()],
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
            for addr in (wt, tcp):  # a fresh client each: a connection over that address only
                async with packaged_host(engine) as client:
                    peer = ID.from_base58(addr.rsplit("/p2p/", 1)[1])
                    await client.connect(PeerInfo(peer, [Multiaddr(addr)]))
                    conns = client.get_network().get_connections(peer)
                    ours = [isinstance(c.muxed_conn, WebTransportConnection) for c in conns]
                    assert ours == [addr == wt], f"{addr}: {conns}"
            proc.send_signal(signal.SIGTERM)
