"""Session tests: two WebTransportH3 over two engines in memory (``support.h3pair``), on every
engine (the ``engine`` fixture is in ``tests/conftest.py``)."""
