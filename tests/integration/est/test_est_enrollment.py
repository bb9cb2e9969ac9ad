"""EST enrollment operations through the in-process app (RFC 7030 §4): cacerts,
simpleenroll, serverkeygen and csrattrs at the application/profile, label and legacy
profile URLs, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import email.parser
import email.policy

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from est_helpers import (
    LABEL,
    NEW,
    SETTINGS,
    EstGateway,
    b64,
    basic,
    certs_from_cms,
    csr_der,
    proxy_header,
)


async def test_ok_cacerts_new_and_label(est_gw) -> None:
    for base in (NEW, LABEL):
        resp = await est_gw.client.get(f"{base}/cacerts")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/pkcs7-mime")
        assert "smime-type=certs-only" in resp.headers["Content-Type"]
        assert resp.headers["Content-Transfer-Encoding"] == "base64"
        certs = certs_from_cms(await resp.read())
        subjects = {c.subject.rfc4514_string() for c in certs}
        assert subjects == {"CN=certgate Issuing CA", "CN=certgate Root CA"}


async def test_ok_simpleenroll_basic_returns_only_the_leaf(est_gw) -> None:
    der, key = csr_der("dev1.example.com")
    status, headers, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/pkcs7-mime")
    (cert,) = certs_from_cms(body)  # §4.2.3: only the issued certificate
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["dev1.example.com"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    listed = await est_gw.api("GET", "/api/v1/applications/demo/certificates")
    item = next(i for i in listed["items"] if i["serial"] == format(cert.serial_number, "x"))
    assert item["method"] == "est"


async def test_ok_simpleenroll_pem_armour_and_raw_der_tolerated(est_gw) -> None:
    der, _ = csr_der()
    pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n" + b64(der) + b"-----END CERTIFICATE REQUEST-----\n"
    )
    for body in (pem, der):
        status, _, out = await est_gw.post("simpleenroll", body, auth=est_gw.basic)
        assert status == 200, out


async def test_ok_serverkeygen_multipart(est_gw) -> None:
    der, throwaway = csr_der("dev5.example.com")
    status, headers, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
    assert status == 200, body
    assert headers["Content-Type"].startswith("multipart/mixed")
    raw = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/pkcs8", "application/pkcs7-mime"]
    key = serialization.load_der_private_key(base64.b64decode(parts[0].get_payload()), None)
    (cert,) = certs_from_cms(parts[1].get_payload().encode())
    assert cert.public_key() == key.public_key()
    assert cert.public_key() != throwaway.public_key()
    # The CSR's key type (P-256), which the policy accepts ...
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    # ... even when the profile prefers another (test_est_serverkeygen_key_type.py).
    profile_id = est_gw.bootstrap["profile_id"]
    await est_gw.api("PATCH", f"/api/v1/profiles/{profile_id}", {"default_key_type": "ec-p384"})
    status, headers, body = await est_gw.post("serverkeygen", b64(der), auth=est_gw.basic)
    assert status == 200, body
    raw = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    parts = list(email.parser.BytesParser(policy=email.policy.default).parsebytes(raw).iter_parts())
    key = serialization.load_der_private_key(base64.b64decode(parts[0].get_payload()), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert cert.subject.rfc4514_string() == "CN=dev5.example.com"


async def test_ok_csrattrs(est_gw) -> None:
    resp = await est_gw.client.get(f"{NEW}/csrattrs")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/csrattrs"
    seq = core.Sequence.load(base64.b64decode(b"".join((await resp.read()).split())))
    dumped = seq.dump()
    assert bytes(core.ObjectIdentifier("1.2.840.10045.2.1").dump()) in dumped  # ecPublicKey
    assert bytes(core.ObjectIdentifier("1.2.840.10045.3.1.7").dump()) in dumped  # P-256
    assert bytes(core.ObjectIdentifier("1.3.6.1.5.5.7.3.1").dump()) in dumped  # serverAuth
    challenge = bytes(core.ObjectIdentifier("1.2.840.113549.1.9.7").dump())
    assert challenge not in dumped
    await est_gw.api("PATCH", SETTINGS, {"require_tls_unique": True})
    resp = await est_gw.client.get(f"{NEW}/csrattrs")
    assert challenge in base64.b64decode(b"".join((await resp.read()).split()))


async def test_ok_legacy_profile_url(est_gw) -> None:
    profile_id = est_gw.bootstrap["profile_id"]
    base = f"/.well-known/est/{profile_id}"
    resp = await est_gw.client.get(f"{base}/cacerts")
    assert resp.status == 404  # not enabled on the profile itself yet
    path = f"/api/v1/profiles/{profile_id}/est"
    view = await est_gw.api("PATCH", path, {"enabled": True})
    assert view["urls"]["base_url"].endswith(base)
    created = await est_gw.api("POST", path + "/password", {"password": "legacy-pass"}, status=201)
    assert created == {"username": "est", "password": "legacy-pass"}
    der, _ = csr_der("legacy.example.com")
    status, _, body = await est_gw.post(
        "simpleenroll", b64(der), base=base, auth=basic("est", "legacy-pass")
    )
    assert status == 200, body
    (cert,) = certs_from_cms(body)
    der, _ = csr_der("legacy.example.com")
    status, _, body = await est_gw.post(
        "simplereenroll", b64(der), base=base, headers=proxy_header(cert)
    )
    assert status == 200, body


async def test_ok_label_form_enrolls(est_gw: EstGateway) -> None:
    cert = await est_gw.enroll("label.example.com", base=LABEL)
    der, _ = csr_der("label.example.com")
    status, _, body = await est_gw.post(
        "simplereenroll", b64(der), base=LABEL, headers=proxy_header(cert)
    )
    assert status == 200, body
