"""End-to-end tests: real py-libp2p hosts on loopback (``support.wt_helpers``), on every engine
(the ``engine`` fixture is in ``tests/conftest.py``)."""
