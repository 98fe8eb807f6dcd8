"""The key log decrypts a captured session: Debian's tshark, given ``keylog_file``, shows the
HTTP/3 extended CONNECT to ``/.well-known/libp2p-webtransport`` of a real loopback session.

tshark 4.0 (Debian 12) decrypts QUIC and parses HTTP/3 frames but does not decode QPACK header
blocks, so the decrypted HEADERS payloads it extracts are decoded with pylsqpack (static table
only: our sessions use no dynamic table).
"""

from __future__ import annotations

from pathlib import Path

import pylsqpack
import trio
from libp2p.peer.peerinfo import PeerInfo
from support.capture import loopback_capture, require_tools, tshark_fields
from support.wt_helpers import wt_addrs, wt_host


def decoded_header_blocks(payloads: list[str]) -> list[dict[bytes, bytes]]:
    """The HEADERS frame payloads that decode as standalone QPACK header blocks."""
    blocks = []
    for index, payload in enumerate(payloads):
        decoder = pylsqpack.Decoder(0, 0)
        try:
            _, headers = decoder.feed_header(index, bytes.fromhex(payload))
        except pylsqpack.DecompressionFailed:
            continue
        blocks.append(dict(headers))
    return blocks


async def test_tshark_decrypts_the_connect(engine: str, tmp_path: Path) -> None:
    require_tools()
    keys, capture = tmp_path / "keys.log", tmp_path / "session.pcapng"
    with trio.fail_after(60):
        async with wt_host(engine, keylog_file=str(keys)) as server:
            (addr,) = wt_addrs(server)
            port = int(addr.value_for_protocol("udp"))
            async with loopback_capture(port, capture), wt_host(engine) as client:
                await client.connect(PeerInfo(server.get_id(), [addr]))
                await client.disconnect(server.get_id())

    headers = "http3.frame_type == 1"
    # Without the secrets nothing past the Initial packets can be read.
    assert await tshark_fields(capture, headers, "http3.frame_payload") == []
    keylog = ("-o", f"tls.keylog_file:{keys}")
    # The server's SETTINGS (decrypted) enable extended CONNECT...
    settings = await tshark_fields(capture, "http3", "http3.settings.extended_connect", *keylog)
    assert "1" in settings
    # ...and the client's CONNECT asks for the libp2p path with the webtransport protocol.
    payloads = await tshark_fields(capture, headers, "http3.frame_payload", *keylog)
    blocks = decoded_header_blocks(payloads)
    connects = [block for block in blocks if block.get(b":method") == b"CONNECT"]
    assert len(connects) == 1, blocks
    (connect,) = connects
    assert connect[b":protocol"] == b"webtransport"
    assert connect[b":path"] == b"/.well-known/libp2p-webtransport?type=noise"
    assert connect[b":authority"] == f"127.0.0.1:{port}".encode()
    assert {b":status": b"200"} in blocks  # the server's answer, decrypted too
