"""The OCSP responder (RFC 6960) at /pki/ocsp/{ca_id}: good, then revoked with its time and
reason in the very next answer; nonces echoed; GET and POST; malformed and unknown
requests answered in OCSP's own form; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID

from gateway.app import create_app
from gateway.core.model import KeyType
from gateway.pki.ca import certificate_to_pem, create_root_ca
from tests.helpers.databases import Seed
from tests.helpers.x509util import make_csr
from tests.integration.api.conftest import Gateway, make_config

DER = serialization.Encoding.DER


@pytest.fixture
async def gateway(
    aiohttp_client: Any, tmp_path: Path, database_url: str, seed_gateway: Seed
) -> Gateway:
    config = make_config(tmp_path / "home", database_url)
    seed_gateway(config)
    client = await aiohttp_client(create_app(config, background=False))
    bootstrap = json.loads((config.home / "bootstrap.json").read_text())
    return Gateway(client, config, bootstrap)


async def _issue(gateway: Gateway, name: str) -> tuple[dict[str, Any], x509.Certificate]:
    issued = await gateway.post(gateway.issue_path(), {"csr": make_csr(name)[0]}, status=201)
    return issued, x509.load_pem_x509_certificate(issued["certificate_pem"].encode())


def _issuer(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificates(issued["chain_pem"].encode())[0]


def _request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


async def _post(gateway: Gateway, ca_id: str, body: bytes) -> ocsp.OCSPResponse:
    resp = await gateway.client.post(
        f"/pki/ocsp/{ca_id}", data=body, headers={"Content-Type": "application/ocsp-request"}
    )
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(await resp.read())


def _check_signed(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    # RFC 6960 §4.2.2.2: signed by the CA itself, named by key hash (§4.2.2.3).
    assert answer.responder_key_hash == (
        x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    )
    key = issuer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # the demo CA's key type
    assert answer.signature_hash_algorithm is not None
    key.verify(
        answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
    )


async def test_ok_good_then_revoked_at_once(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-good.test")
    issuer = _issuer(issued)
    # Issued certificates name the responder in AIA (RFC 5280 §4.2.2.1, RFC 6960 §3.1).
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    urls = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    assert urls == [f"http://127.0.0.1:8080/pki/ocsp/{issued['ca_id']}"]

    answer = await _post(gateway, issued["ca_id"], _request(cert, issuer))
    _check_signed(answer, issuer)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == cert.serial_number
    assert answer.next_update_utc is not None
    assert answer.next_update_utc > answer.this_update_utc

    await gateway.post(
        f"/api/v1/applications/demo/certificates/{issued['id']}/revoke",
        {"reason": "key_compromise"},
        status=200,
    )
    # The identical request: a cached "good" must not survive the revocation.
    answer = await _post(gateway, issued["ca_id"], _request(cert, issuer))
    _check_signed(answer, issuer)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.key_compromise
    stored = await gateway.get(f"/api/v1/applications/demo/certificates/{issued['id']}")
    assert answer.revocation_time_utc is not None
    assert answer.revocation_time_utc.isoformat().startswith(stored["revoked_at"][:19])


async def test_ok_identical_requests_reuse_the_signed_answer(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-cache.test")
    request = _request(cert, _issuer(issued))
    first = await _post(gateway, issued["ca_id"], request)
    second = await _post(gateway, issued["ca_id"], request)
    # ECDSA signatures are randomized: equal bytes mean the cached answer was served.
    assert first.public_bytes(DER) == second.public_bytes(DER)


async def test_ok_nonce_echoed_and_never_cached(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-nonce.test")
    issuer = _issuer(issued)
    for nonce in (os.urandom(16), os.urandom(32)):
        answer = await _post(gateway, issued["ca_id"], _request(cert, issuer, nonce=nonce))
        _check_signed(answer, issuer)
        echoed = answer.extensions.get_extension_for_class(x509.OCSPNonce)
        assert echoed.value.nonce == nonce and not echoed.critical


async def test_ok_get_path_form(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-get.test")
    issuer = _issuer(issued)
    encoded = base64.b64encode(_request(cert, issuer, algorithm=hashes.SHA256())).decode()
    # RFC 6960 §A.1: the URL encoding of the base64 of the DER request.
    resp = await gateway.client.get(f"/pki/ocsp/{issued['ca_id']}/{quote(encoded, safe='')}")
    assert resp.status == 200
    answer = ocsp.load_der_ocsp_response(await resp.read())
    _check_signed(answer, issuer)
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert answer.hash_algorithm.name == "sha256"  # the CertID as asked


async def test_ok_unknown_serial_and_other_issuer(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-unknown.test")
    issuer = _issuer(issued)
    other_ca, other_key = create_root_ca("someone else", KeyType.EC_P256, 30)
    stranger = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(issuer.subject)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .sign(other_key, hashes.SHA256())
    )
    answer = await _post(gateway, issued["ca_id"], _request(stranger, issuer))
    _check_signed(answer, issuer)
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    # The serial of a real certificate, but asked of another issuer (RFC 6960 §2.2).
    answer = await _post(gateway, issued["ca_id"], _request(cert, other_ca))
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="fail/empty"),
        pytest.param(b"\x30\x03\x02\x01\x01", id="fail/not-a-request"),
        pytest.param(b'{"csr": "x"}', id="fail/json"),
        pytest.param(b"\x30" * 70_000, id="fail/too-large"),
    ],
)
async def test_fail_malformed_post(gateway: Gateway, body: bytes) -> None:
    issued, _ = await _issue(gateway, "ocsp-malformed.test")
    answer = await _post(gateway, issued["ca_id"], body)
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


async def test_fail_malformed_get_and_oversized_nonce(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-bad-get.test")
    resp = await gateway.client.get(f"/pki/ocsp/{issued['ca_id']}/not*base64")
    assert resp.status == 200
    answer = ocsp.load_der_ocsp_response(await resp.read())
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # RFC 8954 §2.1: a nonce is at most 32 octets.
    big = _request(cert, _issuer(issued), nonce=os.urandom(33))
    answer = await _post(gateway, issued["ca_id"], big)
    assert answer.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


async def test_fail_unknown_ca_is_404(gateway: Gateway) -> None:
    issued, cert = await _issue(gateway, "ocsp-no-ca.test")
    resp = await gateway.client.post(
        f"/pki/ocsp/{uuid.uuid4()}", data=_request(cert, _issuer(issued))
    )
    assert resp.status == 404
    resp = await gateway.client.get(f"/pki/ocsp/{uuid.uuid4()}/AAAA")
    assert resp.status == 404


async def test_fail_external_ca_is_unauthorized(gateway: Gateway) -> None:
    ca_cert, _ = create_root_ca("outside", KeyType.EC_P256, 30)
    created = await gateway.post(
        "/api/v1/cas",
        {"kind": "external", "name": "outside", "certificate_pem": certificate_to_pem(ca_cert)},
        status=201,
    )
    _, cert = await _issue(gateway, "ocsp-external.test")
    answer = await _post(gateway, created["id"], _request(cert, ca_cert))
    # RFC 6960 §2.3: certgate does not hold that CA's key, so it may not answer for it.
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_ok_post_in_chunks(gateway: Gateway) -> None:
    """A chunked body that arrives in pieces is read whole (no Content-Length)."""
    issued, cert = await _issue(gateway, "ocsp-chunks.test")
    body = _request(cert, _issuer(issued))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]
            await asyncio.sleep(0.005)

    resp = await gateway.client.post(f"/pki/ocsp/{issued['ca_id']}", data=pieces())
    answer = ocsp.load_der_ocsp_response(await resp.read())
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD


async def test_ok_revocation_through_another_process_shows_at_once(
    gateway: Gateway, aiohttp_client: Any
) -> None:
    """Two gateways on one database (two processes of a scaled-out setup): the one that
    cached a "good" answers "revoked" as soon as the other one revokes."""
    other = await aiohttp_client(create_app(gateway.config, background=False))
    issued, cert = await _issue(gateway, "ocsp-two.test")
    issuer = _issuer(issued)
    request = _request(cert, issuer)
    assert (await _post(gateway, issued["ca_id"], request)).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    resp = await other.post(
        f"/api/v1/applications/demo/certificates/{issued['id']}/revoke",
        json={"reason": "superseded"},
        headers=gateway.auth,
    )
    assert resp.status == 200, await resp.text()
    answer = await _post(gateway, issued["ca_id"], request)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.superseded
