from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID

from gateway.core.errors import InvalidInput
from gateway.core.model import KeyType
from gateway.pki.keys import (
    build_csr,
    generate_private_key,
    key_type_of,
    load_private_key_der,
    load_private_key_pem,
    private_key_to_der,
    private_key_to_pem,
    public_key_der,
    signing_hash,
)
from tests.helpers.data import read_text

if TYPE_CHECKING:
    from conftest import Openssl


@pytest.mark.parametrize("key_type", list(KeyType), ids=[f"ok/{k.value}" for k in KeyType])
def test_generate_every_key_type(key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    assert key_type_of(key.public_key()) is key_type
    if key_type.value.startswith("rsa-"):
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == int(key_type.value.removeprefix("rsa-"))
        assert key.public_key().public_numbers().e == 65537
    # Two calls never yield the same key.
    assert public_key_der(generate_private_key(key_type).public_key()) != public_key_der(
        key.public_key()
    )


@pytest.mark.parametrize(
    ("public_key", "expected"),
    [
        pytest.param(ec.generate_private_key(ec.SECP521R1()).public_key(), None, id="ok/p521"),
        pytest.param(ec.generate_private_key(ec.SECP256K1()).public_key(), None, id="ok/k256"),
        pytest.param(ed448.Ed448PrivateKey.generate().public_key(), None, id="ok/ed448"),
        pytest.param(rsa.generate_private_key(65537, 1024).public_key(), None, id="ok/rsa-1024"),
        pytest.param(x25519.X25519PrivateKey.generate().public_key(), None, id="ok/x25519"),
    ],
)
def test_key_type_of_unsupported_is_none(public_key: object, expected: None) -> None:
    assert key_type_of(public_key) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256, id="ok/p256"),
        pytest.param(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384, id="ok/p384"),
        pytest.param(ec.generate_private_key(ec.SECP521R1()), hashes.SHA512, id="ok/p521"),
        pytest.param(rsa.generate_private_key(65537, 2048), hashes.SHA256, id="ok/rsa"),
        pytest.param(ed25519.Ed25519PrivateKey.generate(), None, id="ok/ed25519"),
        pytest.param(ed448.Ed448PrivateKey.generate(), None, id="ok/ed448"),
    ],
)
def test_signing_hash(key: object, expected: type[hashes.HashAlgorithm] | None) -> None:
    algorithm = signing_hash(key)  # type: ignore[arg-type]
    if expected is None:
        assert algorithm is None
    else:
        assert isinstance(algorithm, expected)


@pytest.mark.parametrize(
    "key_type", [KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519], ids=lambda k: f"ok/{k}"
)
def test_der_round_trip(key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    der = private_key_to_der(key)
    # PKCS#8 PrivateKeyInfo is a SEQUENCE, and the encoding is unencrypted.
    assert der[0] == 0x30
    loaded = load_private_key_der(der)
    assert private_key_to_der(loaded) == der


def test_load_der_garbage() -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        load_private_key_der(b"\x30\x03\x02\x01\x00")


@pytest.mark.parametrize(
    "passphrase", [None, "correct horse battery staple"], ids=["ok/plain", "ok/encrypted"]
)
@pytest.mark.parametrize(
    "key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=lambda k: str(k)
)
def test_pem_round_trip(key_type: KeyType, passphrase: str | None) -> None:
    key = generate_private_key(key_type)
    pem = private_key_to_pem(key, passphrase)
    if passphrase is None:
        assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    else:
        assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = load_private_key_pem(pem, passphrase)
    assert private_key_to_der(loaded) == private_key_to_der(key)
    # Bytes are accepted as well as str.
    assert private_key_to_der(load_private_key_pem(pem.encode(), passphrase)) == (
        private_key_to_der(key)
    )


def test_load_traditional_rsa_pem() -> None:
    """Operators often hold PKCS#1 ("BEGIN RSA PRIVATE KEY") files."""
    key = rsa.generate_private_key(65537, 2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert public_key_der(load_private_key_pem(pem, None).public_key()) == public_key_der(
        key.public_key()
    )


_EC_KEY = ec.generate_private_key(ec.SECP256R1())
_ENCRYPTED = private_key_to_pem(_EC_KEY, "s3cret")
_PLAIN = private_key_to_pem(_EC_KEY)


def _pem_of(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize(
    ("pem", "passphrase", "message"),
    [
        pytest.param("not a pem", None, "not PEM", id="fail/not-pem"),
        pytest.param(
            read_text("pki", "key-body-not-der.pem"),
            None,
            "malformed",
            id="fail/garbage-body",
        ),
        pytest.param(_ENCRYPTED, "wrong", "wrong passphrase", id="fail/wrong-passphrase"),
        pytest.param(_ENCRYPTED, None, "no passphrase was given", id="fail/missing-passphrase"),
        pytest.param(_PLAIN, "extra", "not encrypted", id="fail/unexpected-passphrase"),
        pytest.param(
            _pem_of(x25519.X25519PrivateKey.generate()), None, "unsupported", id="fail/x25519"
        ),
        pytest.param(_pem_of(dsa.generate_private_key(2048)), None, "unsupported", id="fail/dsa"),
    ],
)
def test_load_pem_failures(pem: str, passphrase: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        load_private_key_pem(pem, passphrase)
    # The error is safe to show a client: it never echoes the key material.
    assert "-----" not in info.value.message
    assert not any(line in info.value.message for line in pem.splitlines() if len(line) > 8)
    assert info.value.code == "invalid_input"


def test_build_csr_with_subject(openssl: Openssl) -> None:
    key = generate_private_key(KeyType.EC_P256)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")])
    sans = [x509.DNSName("app.example.com"), x509.DNSName("www.example.com")]
    csr = build_csr(key, subject, sans)
    assert csr.is_signature_valid
    assert csr.subject == subject
    assert public_key_der(csr.public_key()) == public_key_der(key.public_key())
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is False
    assert san.value.get_values_for_type(x509.DNSName) == ["app.example.com", "www.example.com"]
    # OpenSSL agrees the proof of possession is valid.
    path = openssl.write("req.pem", csr.public_bytes(serialization.Encoding.PEM))
    result = openssl.run("req", "-in", path, "-noout", "-verify")
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.RSA_2048], ids=lambda k: f"ok/{k}")
def test_build_csr_empty_subject_marks_san_critical(key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    csr = build_csr(key, x509.Name([]), [x509.DNSName("only-san.test")])
    assert csr.is_signature_valid
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical


def test_build_csr_without_sans_has_no_extension() -> None:
    key = generate_private_key(KeyType.EC_P256)
    csr = build_csr(key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")]), [])
    assert csr.is_signature_valid
    assert len(csr.extensions) == 0
