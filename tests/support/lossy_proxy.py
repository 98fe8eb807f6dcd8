"""A seeded lossy UDP relay for fault tests: loss, duplication, reordering and delay jitter.

Unlike the single-client relay in ``tests/endpoint``, this one serves any number of clients (one
upstream socket per client, so the server's answers find their way back) and can be switched
to a black hole, which makes every peer behind it vanish without a close frame.
"""

from __future__ import annotations

import heapq
import random
import socket
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass
class Faults:
    """Per-datagram fault probabilities; ``jitter`` is the largest extra delay (seconds)."""

    loss: float = 0.02
    duplicate: float = 0.01
    reorder: float = 0.02  # held back by ``jitter`` so later datagrams overtake it
    delayed: float = 0.05  # share of datagrams delayed by a random part of ``jitter``
    jitter: float = 0.003
    # Bursts, like a receive buffer that overflows: a datagram starts one with probability
    # ``burst``, and then it and the next ``burst_length`` (a random int in that range)
    # datagrams towards the same receiver are dropped, unless ``burst_time`` seconds pass first
    # (a full buffer drains within milliseconds; it does not eat a stalled sender's probes).
    burst: float = 0.0
    burst_length: tuple[int, int] = (20, 50)
    burst_time: float = 0.01


@dataclass
class ProxyStats:
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    bursts: int = 0
    clients: set[Any] = field(default_factory=set)


class LossyProxy:
    """Relays datagrams between clients and ``server_addr`` (IPv4 loopback) with faults."""

    def __init__(self, server_addr: tuple[str, int], faults: Faults, seed: int = 1) -> None:
        self.server_addr = server_addr
        self.faults = faults
        self.random = random.Random(seed)
        self.stats = ProxyStats()
        self.blackhole = False  # drop everything both ways: the peers "vanish"
        self.front = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._upstream: dict[Any, Any] = {}  # client address -> its socket towards the server
        self._queue: list[tuple[float, int, bytes, Any, Any]] = []  # (due, seq, data, sock, dest)
        self._seq = 0
        self._burst_left: dict[Any, tuple[int, float]] = {}  # receiver -> (datagrams, until)
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.front.getsockname()[:2]
        return str(host), int(port)

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.front.bind(("127.0.0.1", 0))
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._delayed_sender)
            task_status.started()
            while True:
                data, addr = await self.front.recvfrom(65536)
                upstream = self._upstream.get(addr)
                if upstream is None:
                    upstream = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    await upstream.bind(("127.0.0.1", 0))
                    self._upstream[addr] = upstream
                    self.stats.clients.add(addr)
                    nursery.start_soon(self._from_server, upstream, addr)
                await self._relay(data, upstream, self.server_addr)

    async def _from_server(self, upstream: Any, client: Any) -> None:
        while True:
            data, _ = await upstream.recvfrom(65536)
            await self._relay(data, self.front, client)

    async def _relay(self, data: bytes, sock: Any, dest: Any) -> None:
        f = self.faults
        r = self.random.random
        if self.blackhole or r() < f.loss or self._in_burst(dest):
            self.stats.dropped += 1
            return
        copies = 2 if r() < f.duplicate else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            fate = r()
            if fate < f.reorder:
                delay = f.jitter
            elif fate < f.reorder + f.delayed:
                delay = r() * f.jitter
            else:
                await self._send(sock, data, dest)
                continue
            self.stats.delayed += 1
            self._seq += 1
            heapq.heappush(self._queue, (trio.current_time() + delay, self._seq, data, sock, dest))
            self._wake.set()

    def _in_burst(self, dest: Any) -> bool:
        now = trio.current_time()
        left, until = self._burst_left.get(dest, (0, 0.0))
        if now > until:
            left = 0
        if left == 0 and self.faults.burst and self.random.random() < self.faults.burst:
            left, until = (
                self.random.randint(*self.faults.burst_length),
                now + self.faults.burst_time,
            )
            self.stats.bursts += 1
        if left == 0:
            return False
        self._burst_left[dest] = (left - 1, until)
        return True

    async def _send(self, sock: Any, data: bytes, dest: Any) -> None:
        try:
            await sock.sendto(data, dest)
            self.stats.forwarded += 1
        except OSError:
            self.stats.dropped += 1  # e.g. the kernel's buffer is full: that is loss too

    async def _delayed_sender(self) -> None:
        while True:
            if not self._queue:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            due = self._queue[0][0]
            with trio.move_on_at(due):
                await self._wake.wait()
                self._wake = trio.Event()
            now = trio.current_time()
            while self._queue and self._queue[0][0] <= now:
                _, _, data, sock, dest = heapq.heappop(self._queue)
                if not self.blackhole:
                    await self._send(sock, data, dest)

    def close(self) -> None:
        self.front.close()
        for sock in self._upstream.values():
            sock.close()
