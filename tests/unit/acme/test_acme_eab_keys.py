"""EAB credentials as operators paste them into certbot and lego (RFC 8555 §7.3.4)."""

from __future__ import annotations

import base64

import pytest

from protocols.acme import settings


def test_ok_fresh_credentials_are_256_bit_base64url() -> None:
    credentials = settings.new_eab_credentials()
    assert credentials.kid.startswith("kid-")
    key = base64.urlsafe_b64decode(credentials.hmac_key + "=" * (-len(credentials.hmac_key) % 4))
    assert len(key) == 32


def test_ok_a_key_that_would_read_as_a_command_line_option_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 0xF8 encodes to "-" first in base64url: `certbot --eab-hmac-key -…` takes it for an
    # option ("expected one argument"), as a CI run once showed.
    draws = iter([b"\xf8" * 32, b"\x00" * 32])
    real = settings.secrets.token_bytes
    monkeypatch.setattr(
        settings.secrets, "token_bytes", lambda n: next(draws) if n == 32 else real(n)
    )
    credentials = settings.new_eab_credentials()
    assert credentials.hmac_key == settings._b64(b"\x00" * 32)
    assert not credentials.hmac_key.startswith("-")
