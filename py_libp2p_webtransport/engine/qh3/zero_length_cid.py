"""Make a qh3 server accept clients with a zero-length source connection id (Chromium).

Chromium always sends an empty source connection id. qh3 2.1.0 mishandles that twice:

1. its facade ignores an empty SCID (``_learn_remote_source_cid`` tests ``if header[4]:``), so
   the client's ``initial_source_connection_id`` transport parameter (empty) "does not match";
2. its native core never switches its destination CID to the client's empty one and keeps
   addressing packets to the client's original DCID, which the client drops.

The workaround, applied only when the first Initial carries an empty SCID:

* the core is created with an **empty destination CID** (what the client wants to see);
* the server's own CID **is the client's original DCID**, so the client's packets (all sent to
  that DCID until it learns another) reach the core, and the server's Initial SCID is valid;
* the core derived its Initial keys from the empty CID, so we **install the Initial keys
  derived from the original DCID** (RFC 9001 §5.2) in both directions;
* the empty SCID is **recorded** for the transport-parameter check.

This uses qh3 private API (facade attributes, ``QuicConnectionCore.install_packet_key``), so it is
pinned: ``TESTED_QH3_VERSIONS`` lists where ``tests/engine/test_zero_length_cid.py`` passed, and
any other version refuses zero-length-CID clients with ``EngineError`` instead of guessing.

Routing consequence for the endpoint: the server's first CID is chosen by the client, so a CID
already in use must not start (or hijack) a connection. The endpoint's admission guarantees it:
an Initial whose DCID is in the routing table goes to that connection, or is dropped as a
collision when it comes from another address (``tests/endpoint/test_admission.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import qh3
from qh3._hazmat import pull_quic_header
from qh3.quic.crypto import CIPHER_SUITES, derive_key_iv_hp
from qh3.quic.packet import QuicPacketType, QuicProtocolVersion
from qh3.tls import CipherSuite, cipher_suite_hash, hkdf_expand_label, hkdf_extract

from ..._errors import EngineError

logger = logging.getLogger(__name__)

TESTED_QH3_VERSIONS = frozenset({"2.1.0"})

# RFC 9001 §5.2 and RFC 9369 §3.3.1: Initial secrets are derived from the client's first DCID.
INITIAL_SALTS = {
    QuicProtocolVersion.VERSION_1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    QuicProtocolVersion.VERSION_2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
_INITIAL_SUITE = CipherSuite.AES_128_GCM_SHA256
_INITIAL_EPOCH = 0
_LONG_HEADER_TYPES = frozenset(
    {int(QuicPacketType.INITIAL), int(QuicPacketType.ZERO_RTT), int(QuicPacketType.HANDSHAKE)}
)


def first_initial_has_empty_scid(datagram: bytes, host_cid_length: int) -> bool:
    """True if ``datagram`` starts with an Initial packet whose source CID is empty."""
    try:
        header = pull_quic_header(datagram, 0, host_cid_length)
    except ValueError:
        return False
    return header[1] == int(QuicPacketType.INITIAL) and header[4] == b""


def prepare_server(conn: Any, datagram: bytes) -> None:
    """Before qh3 builds the core for ``datagram``: switch the workaround on if it is needed.

    ``conn`` is the adapter's qh3 ``QuicConnection`` subclass; afterwards its
    ``_create_core`` and ``_learn_remote_source_cid`` consult ``wt_zero_length_peer_cid``.
    """
    cid_length = conn.configuration.connection_id_length
    if not first_initial_has_empty_scid(datagram, cid_length):
        return
    if qh3.__version__ not in TESTED_QH3_VERSIONS:
        logger.warning(
            "qh3 %s is untested with zero-length client CIDs (tested: %s)",
            qh3.__version__,
            ", ".join(sorted(TESTED_QH3_VERSIONS)),
        )
        raise EngineError(
            f"qh3 {qh3.__version__} cannot serve zero-length-CID clients (e.g. Chromium): "
            f"the workaround is tested on qh3 {', '.join(sorted(TESTED_QH3_VERSIONS))}; "
            "use the aioquic engine or a tested qh3"
        )
    # The DCID of this Initial: the client's first pick, or after a Retry the id the Retry gave
    # (then it differs from ``original_destination_connection_id``, and the core uses it).
    dcid = pull_quic_header(datagram, 0, cid_length)[3]
    if len(dcid) != cid_length:
        # Our short-header parsing assumes host CIDs of ``connection_id_length`` bytes, and the
        # client's DCID becomes our CID; Chromium uses 8 bytes, like qh3's default.
        raise EngineError(
            f"zero-length-CID client chose a {len(dcid)}-byte DCID; "
            f"this server handles {cid_length}-byte ones only"
        )
    conn.host_cid = dcid
    conn.wt_zero_length_peer_cid = True


def core_connection_ids(conn: Any, initial_dcid: bytes) -> tuple[bytes, bytes]:
    """(source, destination) CIDs for the core: our CID is the client's DCID, theirs is empty."""
    return initial_dcid, b""


def initial_keys(dcid: bytes, version: int, is_client_side: bool) -> tuple[bytes, ...]:
    """(secret, key, iv, hp) that the ``is_client_side`` endpoint sends Initials with."""
    algorithm = cipher_suite_hash(_INITIAL_SUITE)
    salt = INITIAL_SALTS.get(QuicProtocolVersion(version))
    if salt is None:
        raise EngineError(f"no Initial salt for QUIC version {version:#x}")
    initial_secret = hkdf_extract(algorithm, salt, dcid)
    label = b"client in" if is_client_side else b"server in"
    secret = hkdf_expand_label(algorithm, initial_secret, label, b"", 32)
    key, iv, hp = derive_key_iv_hp(cipher_suite=_INITIAL_SUITE, secret=secret, version=version)
    return secret, key, iv, hp


def install_initial_keys(core: Any, dcid: bytes, version: int) -> None:
    """Give a server core the Initial keys of ``dcid`` (it derived them from the empty CID)."""
    hp_name, aead_name = CIPHER_SUITES[_INITIAL_SUITE]
    algorithms = (aead_name.decode(), hp_name.decode())
    for direction, client_side in (("send", False), ("receive", True)):
        secret, key, iv, hp = initial_keys(dcid, version, client_side)
        core.install_packet_key(
            direction, _INITIAL_EPOCH, algorithms, key, iv, hp, 0, secret, version
        )


def learn_empty_source_cid(conn: Any, data: bytes) -> None:
    """Record the client's (empty) SCID for the transport-parameter check, as qh3 should."""
    if conn._handshake_complete or conn._tls is None:
        return
    try:
        header = pull_quic_header(data, 0, conn.configuration.connection_id_length)
    except ValueError:
        return
    if header[1] in _LONG_HEADER_TYPES:  # short headers carry no SCID at all
        conn._tls.remote_initial_source_connection_id = header[4]
