"""Private keys: generation, (de)serialisation and server-side CSRs.

Key material never appears in logs, reprs or error messages: errors say *what* was
wrong ("wrong passphrase"), never echo the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)

from gateway.core.errors import InvalidInput
from gateway.core.model import KeyType

PrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

# 65537 is the only exponent worth using (RFC 8017 §7.1 notes small exponents are fine
# for verification speed; 65537 is what every CA and browser expects).
_RSA_EXPONENT = 65537

_RSA_BITS: dict[KeyType, int] = {
    KeyType.RSA_2048: 2048,
    KeyType.RSA_3072: 3072,
    KeyType.RSA_4096: 4096,
}

_EC_CURVES: dict[KeyType, type[ec.EllipticCurve]] = {
    KeyType.EC_P256: ec.SECP256R1,
    KeyType.EC_P384: ec.SECP384R1,
}


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """A fresh key of `key_type` (every KeyType member is supported)."""
    if key_type in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[key_type]())
    if key_type in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=_RSA_BITS[key_type])
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported key type {key_type!s}")


def key_type_of(public_key: PublicKeyTypes | CertificatePublicKeyTypes) -> KeyType | None:
    """The KeyType of `public_key`; None when it has none (P-521, Ed448, RSA-1024, …)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for key_type, curve in _EC_CURVES.items():
            if isinstance(public_key.curve, curve):
                return key_type
        return None
    if isinstance(public_key, rsa.RSAPublicKey):
        for key_type, bits in _RSA_BITS.items():
            if public_key.key_size == bits:
                return key_type
        return None
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    return None


# The digests we ever sign with; narrower than hashes.HashAlgorithm so the result can go
# straight into cryptography's builders' `sign()`, which only accept SHA-2/SHA-3.
SigningHash: TypeAlias = hashes.SHA256 | hashes.SHA384 | hashes.SHA512


def signing_hash(key: PrivateKey) -> SigningHash | None:
    """The digest to sign with `key`.

    EdDSA hashes internally, so cryptography wants None (RFC 8410 §6). For ECDSA the
    digest matches the curve strength (RFC 5480 §4: P-256/SHA-256, P-384/SHA-384,
    P-521/SHA-512); RSA uses SHA-256, which every verifier accepts.
    """
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        if size >= 521:
            return hashes.SHA512()
        if size >= 384:
            return hashes.SHA384()
        return hashes.SHA256()
    return hashes.SHA256()


def public_key_der(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo DER: the canonical form for comparing two public keys."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _checked(key: PrivateKeyTypes) -> PrivateKey:
    if isinstance(
        key,
        ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        return key
    raise InvalidInput("unsupported private key type (expected an RSA, EC, Ed25519 or Ed448 key)")


def private_key_to_der(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 DER. Only ever fed to the KMS, which encrypts it at once."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_der(der: bytes) -> PrivateKey:
    """Inverse of `private_key_to_der`."""
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise InvalidInput("malformed or unsupported DER private key") from err
    return _checked(key)


def private_key_to_pem(key: PrivateKey, passphrase: str | None = None) -> str:
    """PKCS#8 PEM; encrypted (BestAvailableEncryption) when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")


def load_private_key_pem(pem: str | bytes, passphrase: str | None) -> PrivateKey:
    """Load a PEM private key (PKCS#8, PKCS#1 or SEC1), raising InvalidInput on any problem."""
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    if b"-----BEGIN" not in data:
        raise InvalidInput("private key is not PEM (no BEGIN line)")
    password = passphrase.encode("utf-8") if passphrase else None
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as err:
        # cryptography raises TypeError for a password mismatch in *kind*: one given
        # for a plain key, or none for an encrypted one.
        if password is None:
            raise InvalidInput("private key is encrypted but no passphrase was given") from err
        raise InvalidInput("a passphrase was given but the private key is not encrypted") from err
    except UnsupportedAlgorithm as err:
        raise InvalidInput("unsupported private key algorithm") from err
    except ValueError as err:
        if password is not None and b"ENCRYPTED" in data:
            raise InvalidInput("wrong passphrase for the private key") from err
        raise InvalidInput("malformed PEM private key") from err
    return _checked(key)


def build_csr(
    key: PrivateKey, subject: x509.Name, sans: Sequence[x509.GeneralName]
) -> x509.CertificateSigningRequest:
    """A CSR signed by `key`, for server-side key generation (the request then takes
    the normal CSR path through the policy engine)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        # RFC 5280 §4.2.1.6: the SAN is critical when the subject is empty.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(sans)), critical=len(subject) == 0
        )
    return builder.sign(key, signing_hash(key))
