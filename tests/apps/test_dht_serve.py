"""``py-libp2p-webtransport serve --dht`` as real processes: node 2 joins node 1 with
``--dht-bootstrap``; a client connected only to node 1 finds both nodes' addresses through it.
And when ``serve`` runs the DHT (``--dht``/``--no-dht``, on with ``--demo``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr
from support.wt_helpers import wt_host
from test_dht import ask, find_node, listed

from py_libp2p_webtransport.cli.dht import dht_wanted
from py_libp2p_webtransport.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30  # seconds for a node to start (imports, key, listen) and answer


@asynccontextmanager
async def serving(engine: str, *extra: str) -> AsyncIterator[tuple[trio.Process, Multiaddr]]:
    """``serve --ephemeral --engine E *extra``; the process and its WebTransport address."""
    cmd = [sys.executable, "-m", "py_libp2p_webtransport.cli", "serve", "--ephemeral"]
    proc = await trio.lowlevel.open_process(
        [*cmd, "--engine", engine, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        with trio.fail_after(WAIT):
            first = b""
            while b"\n" not in first:
                chunk = await proc.stdout.receive_some(4096)
                assert chunk, f"serve exited ({await proc.wait()}) before printing its addresses"
                first += chunk
        yield proc, Multiaddr(first.split(b"\n", 1)[0].decode())  # WebTransport comes first
    finally:
        proc.terminate()
        with trio.fail_after(WAIT):
            await proc.wait()


async def test_serve_dht_answers_for_itself_and_the_peer_that_joined_it(engine: str) -> None:
    async with (
        serving(engine, "--dht") as (_, addr_1),
        serving(engine, "--dht-bootstrap", str(addr_1)) as (_, addr_2),
        wt_host(engine) as client,
    ):
        node_1, node_2 = info_from_p2p_addr(addr_1), info_from_p2p_addr(addr_2)
        await client.connect(node_1)
        for node, addr in ((node_1, addr_1), (node_2, addr_2)):
            answer = await ask(client, node_1.peer_id, find_node(node.peer_id))
            # The WebTransport address serve printed (certhashes included); a node's own
            # addresses come without /p2p/, those of a peer it knows as it learned them.
            found = [
                str(a).removesuffix(f"/p2p/{node.peer_id}") for a in listed(answer)[node.peer_id]
            ]
            assert str(addr).removesuffix(f"/p2p/{node.peer_id}") in found, found


async def test_serve_dht_skips_a_bootstrap_peer_it_cannot_reach(engine: str) -> None:
    # A TCP port nobody listens on: refused at once. The node still serves its DHT.
    dead = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWLnkvVjXAhc1ysDnaPPEiFcvh5ke2cGA6ohpTaNhkfpVG"
    async with (
        serving(engine, "--dht-bootstrap", dead) as (proc, addr),
        wt_host(engine) as client,
    ):
        node = info_from_p2p_addr(addr)
        await client.connect(node)
        answer = await ask(client, node.peer_id, find_node(node.peer_id))
        assert listed(answer)[node.peer_id]
    assert proc.stderr is not None
    err = b""
    with trio.fail_after(WAIT):
        while chunk := await proc.stderr.receive_some(1 << 16):  # to the end: serve has exited
            err += chunk
    assert b"DHT bootstrap peer /ip4/127.0.0.1/tcp/9/p2p/" in err and b"unreachable, skipped" in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/ip4/127.0.0.1/udp/4001/quic-v1", "must end in /p2p/<peer id>"),
        ("not-a-multiaddr", "not a multiaddr"),
    ],
)
def test_dht_bootstrap_refuses_an_address_it_cannot_join(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--dht-bootstrap", value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


PEER = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWLnkvVjXAhc1ysDnaPPEiFcvh5ke2cGA6ohpTaNhkfpVG"


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        ([], False),
        (["--dht"], True),
        (["--dht-bootstrap", PEER], True),
        (["--demo"], True),  # the demo page's DHT section looks up through it
        (["--demo", "--no-dht"], False),
        (["--dht", "--no-dht"], False),  # the last one given wins, as argparse does
    ],
)
def test_serve_runs_the_dht_when_asked_and_for_the_demo(argv: list[str], wanted: bool) -> None:
    assert dht_wanted(build_parser().parse_args(["serve", *argv])) is wanted


def test_no_dht_with_dht_bootstrap_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--ephemeral", "--no-dht", "--dht-bootstrap", PEER]) == 2
    assert "--no-dht and --dht-bootstrap contradict each other" in capsys.readouterr().err
