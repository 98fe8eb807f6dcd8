"""The qh3 engine (``QuicEngine`` over qh3's native core) and its workarounds for qh3 2.1.0.

* ``adapter``: ``Qh3Engine``, the ``QuicEngine`` contract over the facade below.
* ``connection``: qh3's ``QuicConnection`` facade subclassed (core construction, handshake
  receive path, receive budget, reservation guard, direct polling of the native core).
* ``zero_length_cid``: Chromium's zero-length client connection ids.
* ``send_gate``: stream data held back until the congestion window can carry it.
* ``fin_hold``: a FIN without data held back until its stream's data is acknowledged.
"""

from __future__ import annotations

from .adapter import Qh3Engine

__all__ = ["Qh3Engine"]
