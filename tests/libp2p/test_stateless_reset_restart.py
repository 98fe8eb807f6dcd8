"""Stateless reset after a real restart: a node (``serve``, a subprocess) is killed and started
again on the same port with the same key; a py peer connected before learns at once that its
connection is gone (a stateless reset, RFC 9000 §10.3), instead of after the idle timeout."""

from __future__ import annotations

from pathlib import Path

import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from support.node_process import crash, start_node
from support.wt_helpers import transport_of, wt_host

from py_libp2p_webtransport import multiaddr as wt_multiaddr
from py_libp2p_webtransport.apps.services import ECHO_PROTOCOL
from py_libp2p_webtransport.engine.reset_token import RESET_REASON

IDLE_TIMEOUT = 30.0  # the client's (the default): the reset must come well before it


async def test_a_peer_learns_of_the_restart_at_once(engine: str, tmp_path: Path) -> None:
    key_file = tmp_path / "node.key"
    with trio.fail_after(120):
        node, addr = await start_node(key_file, engine)
        restarted = None
        try:
            port = wt_multiaddr.parse_webtransport_multiaddr(addr).port
            async with wt_host(engine, idle_timeout=IDLE_TIMEOUT) as peer:
                info = info_from_p2p_addr(addr)
                await peer.connect(info)
                stream = await peer.new_stream(info.peer_id, [ECHO_PROTOCOL])
                await stream.write(b"before the restart")
                await stream.close()
                assert await stream.read(100) == b"before the restart"
                (conn,) = transport_of(peer).connections()

                await crash(node)
                restarted, again = await start_node(key_file, engine, port)
                assert str(again) == str(addr)  # same key, same port, same certhashes

                # The peer sends on its old connection; the new process knows no such
                # connection and answers with a reset derived from the same host key.
                with trio.move_on_after(IDLE_TIMEOUT / 3):
                    try:
                        await peer.new_stream(info.peer_id, [ECHO_PROTOCOL])
                    except Exception:
                        pass  # the connection dies under the stream being opened
                    while not conn.is_closed:
                        await trio.sleep(0.05)
                assert conn.is_closed, "no reset within a third of the idle timeout"
                assert RESET_REASON in (conn.close_reason or ""), conn.close_reason
        finally:
            for proc in (node, restarted):
                if proc is not None and proc.returncode is None:
                    await crash(proc)
