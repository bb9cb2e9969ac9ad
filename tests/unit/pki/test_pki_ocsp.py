"""gateway.pki.ocsp: requests read (or refused as malformedRequest), CertIDs matched to
their issuer, answers built as RFC 6960 says. Odd requests are built with asn1crypto,
which encodes what cryptography's builder refuses to."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from gateway.core.model import KeyType, RevocationReason
from gateway.pki import ocsp as pki_ocsp
from gateway.pki.ca import create_root_ca

DER = serialization.Encoding.DER
CA, CA_KEY = create_root_ca("ocsp unit", KeyType.EC_P256, 30)
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _raw_request(
    algorithm: str = "sha1",
    name_hash: bytes | None = None,
    key_hash: bytes | None = None,
    serial: int = 1234,
    count: int = 1,
    nonce: bytes | None = None,
) -> bytes:
    digest = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}.get(algorithm, hashlib.sha1)
    one = {
        "req_cert": {
            "hash_algorithm": {"algorithm": algorithm},
            "issuer_name_hash": name_hash
            if name_hash is not None
            else digest(CA.subject.public_bytes()).digest(),
            "issuer_key_hash": key_hash if key_hash is not None else b"\x00" * 20,
            "serial_number": serial,
        }
    }
    tbs: dict[str, object] = {"request_list": [one] * count}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def _request(algorithm: hashes.HashAlgorithm, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(CA, CA, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


@pytest.mark.parametrize(
    "algorithm", [hashes.SHA1(), hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]
)
def test_ok_cert_id_names_its_issuer(algorithm: hashes.HashAlgorithm) -> None:
    parsed = pki_ocsp.parse_request(_request(algorithm))
    assert parsed.nonce is None
    assert pki_ocsp.names_issuer(parsed.cert_id, CA)
    other, _ = create_root_ca("ocsp unit", KeyType.EC_P256, 30)  # same name, other key
    assert not pki_ocsp.names_issuer(parsed.cert_id, other)


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(b"", id="fail/empty"),
        pytest.param(b"\x30\x00", id="fail/empty-sequence"),
        pytest.param(_raw_request(count=2), id="fail/two-certificates"),
        pytest.param(_raw_request(count=0), id="fail/no-certificate"),
        pytest.param(_raw_request(algorithm="md5"), id="fail/unsupported-hash"),
        pytest.param(_raw_request(serial=-5), id="fail/negative-serial"),
        pytest.param(_raw_request(key_hash=b"\x00" * 7), id="fail/short-key-hash"),
        pytest.param(_raw_request(algorithm="sha256"), id="fail/sha1-sized-hash-for-sha256"),
        pytest.param(_raw_request(nonce=b""), id="fail/empty-nonce"),
        pytest.param(_raw_request(nonce=b"n" * 33), id="fail/33-octet-nonce"),
    ],
)
def test_fail_malformed(der: bytes) -> None:
    with pytest.raises(pki_ocsp.OcspRefused) as refused:
        pki_ocsp.parse_request(der)
    assert refused.value.status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


@pytest.mark.parametrize(
    "status, reason",
    [
        pytest.param(pki_ocsp.Status.GOOD, None, id="ok/good"),
        pytest.param(pki_ocsp.Status.UNKNOWN, None, id="ok/unknown"),
        pytest.param(pki_ocsp.Status.REVOKED, RevocationReason.KEY_COMPROMISE, id="ok/revoked"),
        pytest.param(
            pki_ocsp.Status.REVOKED, RevocationReason.UNSPECIFIED, id="ok/revoked-unspecified"
        ),
    ],
)
def test_ok_response(status: pki_ocsp.Status, reason: RevocationReason | None) -> None:
    nonce = b"n" * 16
    parsed = pki_ocsp.parse_request(_request(hashes.SHA256(), nonce))
    revoked_at = NOW - timedelta(hours=2) if status is pki_ocsp.Status.REVOKED else None
    der = pki_ocsp.build_response(
        CA,
        CA_KEY,
        parsed,
        pki_ocsp.CertStatus(status, revoked_at, reason),
        NOW,
        NOW + timedelta(hours=1),
    )
    answer = ocsp.load_der_ocsp_response(der)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status.name == status.name
    assert answer.serial_number == CA.serial_number
    assert answer.hash_algorithm.name == "sha256"
    assert answer.this_update_utc == NOW
    assert answer.next_update_utc == NOW + timedelta(hours=1)
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    if status is pki_ocsp.Status.REVOKED:
        assert answer.revocation_time_utc == revoked_at
        # RFC 5280 §5.3.1: unspecified is not sent.
        expected = (
            None if reason is RevocationReason.UNSPECIFIED else x509.ReasonFlags.key_compromise
        )
        assert answer.revocation_reason == expected


def test_ok_unsuccessful_has_no_response_bytes() -> None:
    answer = ocsp.load_der_ocsp_response(
        pki_ocsp.unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    )
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
