"""Replay nonces (protocols.acme.nonces): authenticated, bounded in time, never forgeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.acme import NONCE_LIFETIME, b64url, b64url_decode
from protocols.acme import nonces

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = b"k" * nonces.KEY_BYTES


def test_ok_issued_nonce_is_accepted_until_its_lifetime_ends() -> None:
    value = nonces.issue(KEY, NOW)
    assert len(value) <= 64  # acme_used_nonces.value
    keep = nonces.accept(KEY, value, NOW + NONCE_LIFETIME - timedelta(seconds=1))
    # Remembered as used past the lifetime, by the clock margin between processes.
    assert keep == NOW + NONCE_LIFETIME + nonces.CLOCK_MARGIN


def test_ok_nonces_are_unique() -> None:
    assert len({nonces.issue(KEY, NOW) for _ in range(1000)}) == 1000


def _flip_last(value: str) -> str:
    raw = bytearray(b64url_decode(value))
    raw[-1] ^= 1
    return b64url(bytes(raw))


@pytest.mark.parametrize(
    ("value", "at"),
    [
        pytest.param(lambda: nonces.issue(b"o" * 32, NOW), NOW, id="fail/other-key"),
        pytest.param(lambda: _flip_last(nonces.issue(KEY, NOW)), NOW, id="fail/bad-mac"),
        pytest.param(lambda: nonces.issue(KEY, NOW), NOW + NONCE_LIFETIME, id="fail/expired"),
        pytest.param(lambda: nonces.issue(KEY, NOW)[:-2], NOW, id="fail/truncated"),
        pytest.param(lambda: "not base64url!", NOW, id="fail/garbage"),
        pytest.param(lambda: "", NOW, id="fail/empty"),
        pytest.param(lambda: b64url(b"\x02" + b"\0" * 40), NOW, id="fail/other-version"),
    ],
)
def test_fail_not_accepted(value: object, at: datetime) -> None:
    assert callable(value)
    assert nonces.accept(KEY, value(), at) is None


def _spellings(value: str) -> list[str]:
    """Every base64url text that decodes to the same bytes as `value` (its last character
    has 2 unused bits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    raw = b64url_decode(value)
    found = []
    for c in alphabet:
        other = value[:-1] + c
        try:
            if b64url_decode(other) == raw:
                found.append(other)
        except ValueError:
            continue
    return found


def test_fail_only_the_issued_spelling_is_accepted() -> None:
    """Review finding: all four spellings of one nonce were accepted, so one nonce could be
    used four times (acme_used_nonces keys on the text)."""
    value = nonces.issue(KEY, NOW)
    spellings = _spellings(value)
    assert len(spellings) == 4 and value in spellings
    accepted = [s for s in spellings if nonces.accept(KEY, s, NOW) is not None]
    assert accepted == [value]
