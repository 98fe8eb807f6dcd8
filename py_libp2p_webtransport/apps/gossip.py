"""py-libp2p's own gossipsub, tuned so that a single browser peer can join a topic quickly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

# What js-libp2p's gossipsub speaks; the newer py-libp2p versions are not offered so that both
# ends agree on the same feature set.
GOSSIP_PROTOCOLS = [PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID]


def make_gossipsub() -> GossipSub:
    """A GossipSub router with a 1 s heartbeat (js-libp2p's default) so meshes form fast.

    Spam protection is off: its default of 10 messages per topic per second would silently drop a
    browser's burst of chat messages. Eclipse protection needs several source IPs, which a
    loopback demo never has.
    """
    return GossipSub(
        protocols=GOSSIP_PROTOCOLS,
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=1,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
    )


@asynccontextmanager
async def running_pubsub(host: IHost) -> AsyncIterator[Pubsub]:
    """Run gossipsub on ``host`` for the duration of the block; yields the ready ``Pubsub``."""
    router = make_gossipsub()
    pubsub = Pubsub(host, router)
    async with background_trio_service(pubsub):
        async with background_trio_service(router):
            await pubsub.wait_until_ready()
            yield pubsub


def topic_peers(pubsub: Pubsub, topic: str) -> set[ID]:
    """Peers known to be subscribed to ``topic``."""
    return set(pubsub.peer_topics.get(topic, set()))


def mesh_peers(pubsub: Pubsub, topic: str) -> set[ID]:
    """Peers in our gossipsub mesh for ``topic`` (we forward full messages to them)."""
    router = pubsub.router
    assert isinstance(router, GossipSub)
    return set(router.mesh.get(topic, set()))


async def publish_with_backpressure(
    pubsub: Pubsub, topic: str, data: bytes, max_queued: int = 16, timeout: float = 10.0
) -> None:
    """Publish, first waiting while any peer's outbound RPC queue holds ``max_queued`` or more.

    py-libp2p queues at most 32 RPCs per peer and silently drops the rest (as go-libp2p does), so
    a burst of publishes to a peer behind a slower link loses messages without this wait.
    Raises ``trio.TooSlowError`` if a queue stays full for ``timeout`` seconds.
    """
    with trio.fail_after(timeout):
        while any(len(q) >= max_queued for q in pubsub.peer_queues.values()):
            await trio.sleep(0.005)
    await pubsub.publish(topic, data)
