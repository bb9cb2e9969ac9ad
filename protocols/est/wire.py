"""EST wire formats (RFC 7030 §4, with the RFC 8951 clarifications): base64 bodies,
certs-only CMS, the csrattrs sequence and the serverkeygen multipart answer."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Sequence

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID

# RFC 7030 §4.1.3 / §4.2.3: certs-only CMS, base64 in the body.
PKCS7_CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"
PKCS10 = "application/pkcs10"
CSRATTRS = "application/csrattrs"
PKCS8 = "application/pkcs8"
# Some device stacks still send the pre-RFC 7030 x- form.
PKCS10_TYPES = frozenset({"application/pkcs10", "application/x-pkcs10"})
BASE64_HEADERS = {"Content-Transfer-Encoding": "base64"}

OID_CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
OID_ED25519 = "1.3.101.112"
CURVE_OIDS = {"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34", "P-521": "1.3.132.0.35"}


def b64_lines(der: bytes) -> bytes:
    """base64 with 64-character lines (RFC 7030 §4.1.3 uses the MIME form, RFC 2045 §6.8)."""
    text = base64.b64encode(der)
    return b"\r\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + b"\r\n"


def certs_only(certificates: Iterable[x509.Certificate]) -> bytes:
    """A degenerate SignedData with no signers (RFC 5652 §5, "certs-only" per RFC 8551
    §3.2.2): what /cacerts and /simpleenroll return (RFC 7030 §4.1.3, §4.2.3). Built by
    cryptography (OpenSSL) rather than asn1crypto: it is on every enrollment's path and
    several times faster."""
    return pkcs7.serialize_certificates(list(certificates), serialization.Encoding.DER)


class _AnySet(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


class _Attribute(core.Sequence):  # type: ignore[misc]
    _fields = [("type", core.ObjectIdentifier), ("values", _AnySet)]


class _CsrAttrs(core.SequenceOf):  # type: ignore[misc]
    _child_spec = core.Any


class CsrAttrs:
    """CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID (RFC 7030 §4.5.2): a bare OID asks
    for that attribute; an Attribute also says which value is wanted."""

    def __init__(self) -> None:
        self._items: list[bytes] = []

    def __bool__(self) -> bool:
        return bool(self._items)

    def oid(self, dotted: str) -> None:
        self._items.append(bytes(core.ObjectIdentifier(dotted).dump()))

    def attribute(self, dotted: str, values_der: Sequence[bytes]) -> None:
        attr = _Attribute(
            {"type": dotted, "values": _AnySet([core.Any.load(v) for v in values_der])}
        )
        self._items.append(bytes(attr.dump()))

    def der(self) -> bytes:
        return bytes(_CsrAttrs([core.Any.load(i) for i in self._items]).dump())


def oid_der(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump())


def challenge_password(csr: x509.CertificateSigningRequest) -> bytes | None:
    """The CSR's challengePassword attribute (PKCS#9 §5.4.1), raw; None when absent."""
    try:
        attr = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)
    except (x509.AttributeNotFound, ValueError):
        return None
    value = attr.value
    return value if isinstance(value, bytes) else str(value).encode()


def multipart_keygen(pkcs8_der: bytes, cms_der: bytes) -> tuple[bytes, str]:
    """RFC 7030 §4.4.2: multipart/mixed, the private key (application/pkcs8) first, then the
    certificate (certs-only CMS), each base64. Returns (body, content type)."""
    boundary = "est-" + secrets.token_hex(12)
    parts = [(PKCS8, pkcs8_der), (PKCS7_CERTS_ONLY, cms_der)]
    body = b""
    for content_type, der in parts:
        body += (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode() + b64_lines(der)
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/mixed; boundary="{boundary}"'
