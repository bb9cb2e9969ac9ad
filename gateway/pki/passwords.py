"""Secrets that only ever need checking (API tokens, EST passphrases, SCEP challenges).

Stored as `scrypt$<n>$<r>$<p>$<salt_b64>$<hash_b64>` (RFC 7914 parameters), so the
cost can be raised later without invalidating stored hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

_SCHEME = "scrypt"
_N = 2**14
_R = 8
_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32

# Bounds on parameters read back from storage: a corrupted or hostile row must not make
# verification allocate gigabytes (scrypt memory is 128 * n * r * p bytes, RFC 7914 §2).
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_MEMORY = 256 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=length,
        maxmem=128 * n * r * p + 1024 * 1024,
    )


def hash_secret(secret: str) -> str:
    """Salted scrypt hash of `secret`, self-describing."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(secret, salt, _N, _R, _P, _HASH_BYTES)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """True when `secret` matches `encoded`; False for a mismatch or a malformed encoding."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return False
    # RFC 7914 §2: n must be a power of two greater than 1.
    if not (1 < n <= _MAX_N and n & (n - 1) == 0):
        return False
    if not (0 < r <= _MAX_R and 0 < p <= _MAX_P and 128 * n * r * p <= _MAX_MEMORY):
        return False
    if not salt or not 16 <= len(expected) <= 64:
        return False
    try:
        actual = _scrypt(secret, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def generate_secret(nbytes: int = 32) -> str:
    """A fresh URL-safe random secret (token part, EST password, SCEP challenge)."""
    return secrets.token_urlsafe(nbytes)
