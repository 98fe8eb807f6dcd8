"""WebTransport application error codes mapped into HTTP/3 codes (draft-16 §4.4)."""

from __future__ import annotations

from types import ModuleType

import pytest

from py_libp2p_webtransport.constants import WT_APP_ERROR_FIRST, WT_APP_ERROR_LAST
from py_libp2p_webtransport.errors import LocalProtocolError


def _is_grease(h3: int) -> bool:
    # Reserved HTTP/3 codes are 0x1f * N + 0x21 (RFC 9114 §8.1).
    return (h3 - 0x21) % 0x1F == 0


def test_spec_endpoints(wire_module: ModuleType) -> None:
    # Values listed in the draft: first code, the last 8-bit code (draft-02), the last 32-bit one.
    assert wire_module.wt_to_h3_error(0) == 0x52E4A40FA8DB
    assert wire_module.wt_to_h3_error(0xFF) == 0x52E4A40FA9E2
    assert wire_module.wt_to_h3_error(0xFFFFFFFF) == 0x52E5AC983162
    assert wire_module.h3_to_wt_error(0x52E4A40FA8DB) == 0
    assert wire_module.h3_to_wt_error(0x52E4A40FA9E2) == 0xFF
    assert wire_module.h3_to_wt_error(0x52E5AC983162) == 0xFFFFFFFF


def test_mapping_skips_grease_and_is_monotonic(wire_module: ModuleType) -> None:
    previous = None
    for code in range(0, 200):
        h3 = wire_module.wt_to_h3_error(code)
        assert not _is_grease(h3)
        if previous is not None:
            # Consecutive codes are adjacent except across one skipped GREASE value.
            assert h3 - previous in (1, 2)
            if h3 - previous == 2:
                assert _is_grease(h3 - 1)
        previous = h3
        assert wire_module.h3_to_wt_error(h3) == code


def test_every_h3_code_in_a_window_maps_back(wire_module: ModuleType) -> None:
    for h3 in range(WT_APP_ERROR_FIRST, WT_APP_ERROR_FIRST + 400):
        code = wire_module.h3_to_wt_error(h3)
        if _is_grease(h3):
            assert code is None
        else:
            assert code is not None and wire_module.wt_to_h3_error(code) == h3


@pytest.mark.parametrize(
    "h3", [0, 0x100, 0x10C, WT_APP_ERROR_FIRST - 1, WT_APP_ERROR_LAST + 1, 2**62 - 1, -5, 2**64]
)
def test_outside_range_is_none(wire_module: ModuleType, h3: int) -> None:
    assert wire_module.h3_to_wt_error(h3) is None


@pytest.mark.parametrize("code", [-1, 2**32, 2**64])
def test_wt_code_out_of_range(wire_module: ModuleType, code: int) -> None:
    with pytest.raises(LocalProtocolError):
        wire_module.wt_to_h3_error(code)


def test_codes_must_be_ints(wire_module: ModuleType) -> None:
    with pytest.raises(TypeError):
        wire_module.wt_to_h3_error(1.0)
    with pytest.raises(TypeError):
        wire_module.h3_to_wt_error("0x100")
