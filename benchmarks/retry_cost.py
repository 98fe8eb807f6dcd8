"""What QUIC Retry costs the server per new-connection Initial (CPU, in process, no sockets).

    python benchmarks/retry_cost.py                 # 20000 of each
    python benchmarks/retry_cost.py --count 100000 --json out.json

Measures, per operation: answering an Initial with a Retry (token encryption + integrity tag),
validating a good token, and rejecting a forged one; plus the Initial/Retry size ratio (a Retry
must never amplify a spoofed flood). Compare with what accepting an Initial costs at least: a
new engine fed one (undecryptable) Initial, ``accept_<engine>_us`` for each installed engine (a
real client's Initial then costs a TLS handshake on top).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from py_libp2p_webtransport._wire import encode_varint  # noqa: E402
from py_libp2p_webtransport.certs import ephemeral_certificate  # noqa: E402
from py_libp2p_webtransport.endpoint.quic_header import parse_header  # noqa: E402
from py_libp2p_webtransport.endpoint.retry import AddressValidator  # noqa: E402
from py_libp2p_webtransport.engine import EngineConfig, available_engines, create_engine  # noqa: E402

ADDR = ("192.0.2.1", 50000)


def initial(dcid: bytes, token: bytes = b"") -> bytes:
    head = bytes([0xC3]) + (1).to_bytes(4, "big") + bytes([len(dcid)]) + dcid + b"\x00"
    head += encode_varint(len(token)) + token + (0x4000 | 1100).to_bytes(2, "big")
    return head + bytes(1200 - len(head))


def per_op(fn: Callable[[], object], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        fn()
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    validator = AddressValidator("always", 0)
    first = initial(os.urandom(8))
    header = parse_header(first, 8)
    retry = validator.retry_packet(header, ADDR, 0.0)
    rheader = parse_header(retry, 8)
    token = retry[7 + len(rheader.destination_cid) + len(rheader.source_cid) : -16]
    second = initial(rheader.source_cid, token)
    second_header = parse_header(second, 8)
    forged = initial(rheader.source_cid, os.urandom(len(token)))
    forged_header = parse_header(forged, 8)

    def reject() -> None:
        try:
            validator.validate(forged, forged_header, ADDR, 1.0)
        except Exception:
            pass

    figures = {
        "retry_us": per_op(lambda: validator.retry_packet(header, ADDR, 0.0), args.count),
        "validate_us": per_op(
            lambda: validator.validate(second, second_header, ADDR, 1.0), args.count
        ),
        "reject_forged_us": per_op(reject, args.count),
        "retry_bytes": len(retry),
        "initial_bytes": len(first),
    }
    cert = ephemeral_certificate()
    for engine in available_engines():
        config = EngineConfig(
            is_client=False, certificate_der=cert.der, private_key_der=cert.key_der
        )
        figures[f"accept_{engine}_us"] = per_op(
            lambda e=engine, c=config: create_engine(
                e, c, original_destination_connection_id=os.urandom(8)
            ).receive_datagrams([first], ADDR, 0.0),
            max(args.count // 20, 50),
        )
    for name, value in figures.items():
        print(f"{name:>22}: {value:10.1f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)


if __name__ == "__main__":
    main()
