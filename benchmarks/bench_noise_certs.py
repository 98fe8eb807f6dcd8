"""Cost of the per-connection security work: Noise handshakes and certificate derivation.

Run from the repository root: ``python benchmarks/bench_noise_certs.py [--json out.json]``.
Prints medians; nothing here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import trio
import trio.testing
from libp2p.crypto.ed25519 import create_new_key_pair

from py_libp2p_webtransport.certs import CertManager, derive_certificate
from py_libp2p_webtransport.multiaddr import certhash_multihash
from py_libp2p_webtransport.noise import NoiseHandshake, handshake_inbound, handshake_outbound


class _Adapter:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def read(self, n: int) -> bytes:
        return await self.stream.receive_some(n)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)


def sans_io_handshake_ms(rounds: int) -> float:
    client_key, server_key = create_new_key_pair(), create_new_key_pair()
    hashes = [certhash_multihash(bytes([i])) for i in range(3)]
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        client = NoiseHandshake.initiator(client_key.private_key, dialed_certhashes=hashes[1:])
        server = NoiseHandshake.responder(server_key.private_key, certhashes=hashes)
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())
        assert client.is_complete and server.is_complete
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def trio_handshake_ms(rounds: int) -> float:
    client_key, server_key = create_new_key_pair(), create_new_key_pair()
    samples: list[float] = []

    async def main() -> None:
        for _ in range(rounds):
            a, b = trio.testing.memory_stream_pair()
            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(handshake_inbound, _Adapter(b), server_key.private_key)
                await handshake_outbound(_Adapter(a), client_key.private_key)
            samples.append((time.perf_counter() - start) * 1000)

    trio.run(main)
    return statistics.median(samples)


def derive_ms(rounds: int) -> float:
    key = create_new_key_pair().private_key
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        derive_certificate(key, 1_790_000_000_000 + i * 60_000)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def manager_start_ms(rounds: int) -> float:
    key = create_new_key_pair().private_key
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        CertManager(key)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    results = {
        "noise_handshake_sans_io_ms": sans_io_handshake_ms(args.rounds),
        "noise_handshake_trio_memory_ms": trio_handshake_ms(args.rounds),
        "derive_certificate_ms": derive_ms(args.rounds),
        "cert_manager_start_ms": manager_start_ms(max(1, args.rounds // 10)),
    }
    for name, value in results.items():
        print(f"{name:34s} {value:8.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
