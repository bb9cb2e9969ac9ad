"""OCSP (RFC 6960) wire work without I/O: read a request, answer one certificate's status.

The service (gateway.services.ocsp) looks the certificate up; this module only parses,
matches the CertID against the CA and signs. cryptography's builders carry one
SingleResponse per response, so a request asking about several certificates at once is
answered malformedRequest (RFC 6960 §4.1.1 allows a list; every client we serve, openssl
included, asks about one).
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from gateway.core.model import RevocationReason
from gateway.pki.crl import reason_flag
from gateway.pki.keys import PrivateKey, signing_hash

# RFC 8954 §2.1: a nonce is 1 to 32 octets; a responder may refuse anything longer.
MAX_NONCE_BYTES = 32
# The CertID hash algorithms we can match (RFC 6960 §4.1.1 uses SHA-1 by default; RFC 5019
# §2.1.1 clients; SHA-256 and up from newer ones).
_CERT_ID_HASHES: tuple[type[hashes.HashAlgorithm], ...] = (
    hashes.SHA1,
    hashes.SHA224,
    hashes.SHA256,
    hashes.SHA384,
    hashes.SHA512,
)


class OcspRefused(Exception):
    """The request cannot be answered with a SingleResponse: answer with `status`."""

    def __init__(self, status: ocsp.OCSPResponseStatus, why: str) -> None:
        super().__init__(why)
        self.status = status


class Status(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CertId:
    """RFC 6960 §4.1.1 CertID: the certificate named by hashes of its issuer and a serial."""

    algorithm: hashes.HashAlgorithm
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int

    def cache_key(self) -> tuple[str, bytes, bytes, int]:
        return (self.algorithm.name, self.issuer_name_hash, self.issuer_key_hash, self.serial)


@dataclass(frozen=True)
class ParsedRequest:
    cert_id: CertId
    nonce: bytes | None


@dataclass(frozen=True)
class CertStatus:
    status: Status
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None


def parse_request(der: bytes) -> ParsedRequest:
    """The one CertID and the nonce of a DER OCSPRequest; OcspRefused(malformedRequest)
    for anything else (a 500 would tell an OCSP client nothing, RFC 6960 §2.3)."""
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    try:
        request = ocsp.load_der_ocsp_request(der)
        cert_id = CertId(
            request.hash_algorithm,
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
        )
        try:
            nonce: bytes | None = request.extensions.get_extension_for_class(
                x509.OCSPNonce
            ).value.nonce
        except x509.ExtensionNotFound:
            nonce = None
    except (ValueError, TypeError, UnsupportedAlgorithm, NotImplementedError) as err:
        # cryptography: bad DER, an unknown hash OID, … and NotImplementedError for a
        # list of more than one Request (see the module docstring).
        raise OcspRefused(malformed, f"not a single-certificate OCSP request: {err}") from err
    if cert_id.serial < 0:
        # RFC 5280 §4.1.2.2: serial numbers are positive; a negative one names no
        # certificate (and cryptography cannot repeat it in a SingleResponse).
        raise OcspRefused(malformed, "negative serial number")
    size = cert_id.algorithm.digest_size
    if len(cert_id.issuer_name_hash) != size or len(cert_id.issuer_key_hash) != size:
        # §4.1.1: both are hashes made with hashAlgorithm.
        raise OcspRefused(malformed, "issuer hashes do not match the CertID hash algorithm")
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise OcspRefused(malformed, f"nonce of {len(nonce)} octets (RFC 8954 §2.1: 1-32)")
    return ParsedRequest(cert_id, nonce)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """The value of SubjectPublicKeyInfo.subjectPublicKey, which issuerKeyHash hashes
    (RFC 6960 §4.1.1: "excluding the tag and length fields"): the BIT STRING's content
    after its unused-bits octet."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bytes(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:])


def names_issuer(cert_id: CertId, issuer: x509.Certificate) -> bool:
    """Whether the CertID's issuer hashes are those of `issuer` (RFC 6960 §4.1.1)."""
    if not isinstance(cert_id.algorithm, _CERT_ID_HASHES):
        return False
    name_hash = _digest(cert_id.algorithm, issuer.subject.public_bytes())
    key_hash = _digest(cert_id.algorithm, _subject_public_key_bits(issuer))
    return hmac.compare_digest(name_hash, cert_id.issuer_name_hash) and hmac.compare_digest(
        key_hash, cert_id.issuer_key_hash
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def build_response(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    request: ParsedRequest,
    status: CertStatus,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A successful BasicOCSPResponse about the request's CertID, signed by the CA itself
    (RFC 6960 §4.2.2.2: the CA that issued the certificate may sign), DER."""
    if status.status is Status.REVOKED:
        assert status.revoked_at is not None
        cert_status = ocsp.OCSPCertStatus.REVOKED
        revoked_at: datetime | None = _utc(status.revoked_at)
        # RFC 5280 §5.3.1 (which RFC 6960 §4.2.1 reuses for revocationReason): unspecified
        # SHOULD NOT be sent; omit it, as the CRL does (gateway.pki.crl).
        reason = (
            reason_flag(status.reason)
            if status.reason is not None and status.reason is not RevocationReason.UNSPECIFIED
            else None
        )
    else:
        cert_status = (
            ocsp.OCSPCertStatus.GOOD
            if status.status is Status.GOOD
            else ocsp.OCSPCertStatus.UNKNOWN
        )
        revoked_at, reason = None, None
    cert_id = request.cert_id
    builder = (
        ocsp.OCSPResponseBuilder()
        # The SingleResponse repeats the CertID as asked (same hash algorithm), so clients
        # match it to their request (RFC 6960 §4.2.1).
        .add_response_by_hash(
            cert_id.issuer_name_hash,
            cert_id.issuer_key_hash,
            cert_id.serial,
            cert_id.algorithm,
            cert_status,
            _utc(this_update),
            _utc(next_update),
            revoked_at,
            reason,
        )
        # §4.2.2.3: ResponderID byKey (SHA-1 of the responder's public key), the smaller
        # form, which RFC 5019 §2.2.3 recommends.
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    )
    if request.nonce is not None:
        # RFC 8954 §2.1 / RFC 6960 §4.4.1: echo the client's nonce, non-critical.
        builder = builder.add_extension(x509.OCSPNonce(request.nonce), critical=False)
    response = builder.sign(issuer_key, signing_hash(issuer_key))
    return response.public_bytes(serialization.Encoding.DER)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An OCSPResponse with only a responseStatus (RFC 6960 §4.2.1: no responseBytes)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
