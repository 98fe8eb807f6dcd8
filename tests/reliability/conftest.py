"""Fixtures for the reliability suite: real py-libp2p hosts on loopback, on every engine (the
``engine`` fixture is in ``tests/conftest.py``)."""
