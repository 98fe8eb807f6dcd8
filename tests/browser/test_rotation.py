"""A real certificate rotation, on the real clock, seen by headless Chromium running js-libp2p.

Chromium checks the served certificate against its own clock, so the rotation cannot be faked
with an injected clock: the test picks a host key whose next rotation is less than a minute and
a half away (rotations are staggered per key) and lets the listener's own rotation loop do it.
A page holding the address from before the rotation still dials (the old "next" certificate is
now the one served), and identify gives it the new pair; a page given the new address dials too.
"""

from __future__ import annotations

import os
import time

import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from support.browser_harness import run_browser
from support.endpoint_helpers import wait_until
from support.wt_helpers import LISTEN_V4, packaged_host, transport_of

from py_libp2p_webtransport.certs import next_rotation_after
from py_libp2p_webtransport.multiaddr import parse_webtransport_multiaddr

pytestmark = pytest.mark.browser
BROWSER = "chromium"


def key_rotating_between(low: float, high: float) -> tuple[KeyPair, float]:
    """A fresh key whose next rotation is ``low``..``high`` seconds from now (~20k tries)."""
    while True:
        key_pair = create_new_key_pair(os.urandom(32))
        due = next_rotation_after(key_pair.private_key, time.time())
        if low < due - time.time() < high:
            return key_pair, due


def certhashes(addr: str) -> list[bytes]:
    return list(parse_webtransport_multiaddr(addr).certhashes)


async def test_page_with_the_pre_rotation_address_still_dials(engine: str) -> None:
    key_pair, due = key_rotating_between(15, 75)
    with trio.fail_after(240):
        async with packaged_host(engine, key_pair=key_pair, listen=(LISTEN_V4,)) as server:
            (before,) = [str(a) for a in server.get_addrs()]
            announcer = server.webtransport_announcer  # type: ignore[attr-defined]
            await wait_until(
                lambda: announcer.rotations == 1, "the listener's rotation", due - time.time() + 30
            )
            (after,) = [str(a) for a in server.get_addrs()]
            assert certhashes(after)[0] == certhashes(before)[1] != certhashes(before)[0]

            old = await run_browser(
                BROWSER,
                [{"op": "dial", "addr": before}, {"op": "ping", "count": 3}, {"op": "identify"}],
            )
            old.ok_step("ping")
            told = [a for a in old.ok_step("identify")["listenAddrs"] if "/webtransport" in a]
            assert [certhashes(a) for a in told] == [certhashes(after)]

            new = await run_browser(
                BROWSER, [{"op": "dial", "addr": after}, {"op": "ping", "count": 3}]
            )
            new.ok_step("ping")
            assert transport_of(server).cert_manager.advertised_certhashes() == certhashes(after)
