from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.pki.passwords import generate_secret, hash_secret, verify_secret


@pytest.mark.parametrize(
    "secret",
    ["s3cret", "", "pässwörd-ünïcode", "x" * 1000],
    ids=["ok/ascii", "ok/empty", "ok/unicode", "ok/long"],
)
def test_hash_then_verify(secret: str) -> None:
    encoded = hash_secret(secret)
    assert verify_secret(secret, encoded)
    assert not verify_secret(secret + "x", encoded)


def test_encoding_format_is_scrypt_with_documented_parameters() -> None:
    encoded = hash_secret("token")
    scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    salt = base64.b64decode(salt_b64, validate=True)
    digest = base64.b64decode(hash_b64, validate=True)
    assert len(salt) == 16
    assert len(digest) == 32
    # Independently recomputed: the format is what it claims to be.
    assert hashlib.scrypt(b"token", salt=salt, n=16384, r=8, p=1, dklen=32) == digest


def test_salts_are_random() -> None:
    assert hash_secret("same") != hash_secret("same")


def test_hash_never_contains_secret() -> None:
    assert "hunter2" not in hash_secret("hunter2")


def _valid() -> str:
    return hash_secret("pw")


_SALT = base64.b64encode(bytes(16)).decode()
_HASH = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "pw",
        "bcrypt$16384$8$1$" + _SALT + "$" + _HASH,
        "scrypt$16384$8$1$" + _SALT,
        "scrypt$16384$8$1$" + _SALT + "$" + _HASH + "$extra",
        "scrypt$abc$8$1$" + _SALT + "$" + _HASH,
        "scrypt$1000$8$1$" + _SALT + "$" + _HASH,
        "scrypt$1$8$1$" + _SALT + "$" + _HASH,
        "scrypt$" + str(2**30) + "$8$1$" + _SALT + "$" + _HASH,
        "scrypt$16384$0$1$" + _SALT + "$" + _HASH,
        "scrypt$16384$8$0$" + _SALT + "$" + _HASH,
        "scrypt$16384$8$1$!!!$" + _HASH,
        "scrypt$16384$8$1$" + _SALT + "$not base64",
        "scrypt$16384$8$1$$" + _HASH,
        "scrypt$16384$8$1$" + _SALT + "$" + base64.b64encode(bytes(4)).decode(),
    ],
    ids=[
        "fail/empty",
        "fail/plaintext",
        "fail/other-scheme",
        "fail/missing-field",
        "fail/extra-field",
        "fail/n-not-int",
        "fail/n-not-power-of-two",
        "fail/n-one",
        "fail/n-huge",
        "fail/r-zero",
        "fail/p-zero",
        "fail/salt-not-base64",
        "fail/hash-not-base64",
        "fail/empty-salt",
        "fail/hash-too-short",
    ],
)
def test_malformed_encodings_return_false(encoded: str) -> None:
    assert verify_secret("pw", encoded) is False


def test_tampered_hash_fails() -> None:
    encoded = _valid()
    head, digest = encoded.rsplit("$", 1)
    raw = bytearray(base64.b64decode(digest))
    raw[0] ^= 1
    assert not verify_secret("pw", head + "$" + base64.b64encode(bytes(raw)).decode())


def test_other_parameters_still_verify() -> None:
    """Stored hashes keep working if the default cost changes later."""
    salt = bytes(range(16))
    digest = hashlib.scrypt(b"pw", salt=salt, n=2**12, r=8, p=2, dklen=32)
    encoded = f"scrypt${2**12}$8$2${base64.b64encode(salt).decode()}$" + (
        base64.b64encode(digest).decode()
    )
    assert verify_secret("pw", encoded)


def test_generate_secret() -> None:
    values = {generate_secret() for _ in range(100)}
    assert len(values) == 100
    assert all(len(v) >= 43 for v in values)
