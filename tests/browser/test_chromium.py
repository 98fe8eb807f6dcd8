"""Headless Chromium (Debian ``chromium``, through playwright-core) running js-libp2p dials our
py-libp2p host over WebTransport: every check of ``support/browser_checks.py``, on both QUIC
engines."""

from __future__ import annotations

import pytest
from support.browser_checks import (
    test_100_concurrent_streams_echo_64KiB,
    test_browser_reset_is_seen_as_reset,
    test_dial_reports_progress,
    test_dial_through_quic_retry,
    test_echo_is_byte_exact,
    test_identify_lists_our_protocols,
    test_perf_upload_and_download_32MiB,
    test_ping_20_times,
    test_reconnect_after_restart_with_old_multiaddr,
    test_server_close_is_seen_by_the_page,
    test_server_reset_is_seen_by_the_browser,
    test_wrong_certhash_fails_with_a_certificate_error,
)

pytestmark = pytest.mark.browser
BROWSER = "chromium"

__all__ = [
    "test_dial_reports_progress",
    "test_dial_through_quic_retry",
    "test_ping_20_times",
    "test_identify_lists_our_protocols",
    "test_echo_is_byte_exact",
    "test_perf_upload_and_download_32MiB",
    "test_100_concurrent_streams_echo_64KiB",
    "test_browser_reset_is_seen_as_reset",
    "test_server_reset_is_seen_by_the_browser",
    "test_server_close_is_seen_by_the_page",
    "test_reconnect_after_restart_with_old_multiaddr",
    "test_wrong_certhash_fails_with_a_certificate_error",
]
