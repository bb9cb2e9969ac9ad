"""Replay nonces (RFC 8555 §6.5) that cost nothing to hand out.

A nonce is base64url(version || issued-at || 16 random bytes || MAC), the MAC being
HMAC-SHA-256 (truncated to 128 bits) under a key every process serving the directory
shares (kept in the database, encrypted under the project's KMS key: protocols.acme.settings).
Any process can therefore tell a nonce it, or another process, handed out from one it did
not, without a database row per nonce handed out. What must be shared is the set of nonces
already used: accepting one inserts it into `acme_used_nonces`, whose primary key rejects
the second use, and the row stays until the nonce is past its lifetime (after which the
timestamp rejects it anyway). Boulder and Pebble use the same split (a nonce that proves
its origin, plus a record of used ones).

§6.5 asks that nonces be unpredictable: the random part is 128 bits from `secrets`; the
MAC keeps anyone but the server from minting one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from gateway.core.acme import NONCE_LIFETIME, b64url, b64url_decode

_VERSION = b"\x01"
_STAMP_BYTES = 8
_RANDOM_BYTES = 16
_MAC_BYTES = 16
_BODY_BYTES = len(_VERSION) + _STAMP_BYTES + _RANDOM_BYTES
KEY_BYTES = 32

# A used nonce is remembered this much longer than its lifetime: processes' clocks differ
# a little, and the one that sweeps used nonces must not forget one that another process
# (whose clock is behind) would still accept.
CLOCK_MARGIN = timedelta(minutes=10)


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def issue(key: bytes, now: datetime) -> str:
    """A fresh nonce (55 characters, within the 64 that acme_used_nonces.value holds)."""
    stamp = int(now.timestamp()).to_bytes(_STAMP_BYTES, "big")
    body = _VERSION + stamp + secrets.token_bytes(_RANDOM_BYTES)
    return b64url(body + _mac(key, body))


def accept(key: bytes, value: str, now: datetime) -> datetime | None:
    """Until when the nonce's use must be remembered, or None when it is not one of ours
    (wrong form or MAC) or is past its lifetime. Whether it was used before is for the
    caller to find out (AcmeRepositoryPort.use_nonce)."""
    try:
        raw = b64url_decode(value)
    except ValueError:
        return None
    if b64url(raw) != value:
        # The last character of 55 carries 2 unused bits: four spellings decode to one
        # nonce. Only the one we issued is accepted, so the used-nonce record (kept as
        # text) sees every use of a nonce under one key and a replay cannot re-spell it.
        return None
    if len(raw) != _BODY_BYTES + _MAC_BYTES or raw[:1] != _VERSION:
        return None
    body, mac = raw[:_BODY_BYTES], raw[_BODY_BYTES:]
    if not hmac.compare_digest(_mac(key, body), mac):
        return None
    issued = datetime.fromtimestamp(int.from_bytes(body[1 : 1 + _STAMP_BYTES], "big"), UTC)
    expires = issued + NONCE_LIFETIME
    if now >= expires:
        return None
    return expires + CLOCK_MARGIN


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)
