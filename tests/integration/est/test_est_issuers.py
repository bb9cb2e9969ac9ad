"""EST on the issuers a legacy project can hold (issue 12, item 2), in EST's own error form
(text/plain with a status, RFC 7030 §4.2.3): a self-signed profile issues only through
serverkeygen (the certificate's key is made here and signs it) and has no CA certificates;
an external CA's profile answers 409 ca_external and stores nothing."""

from __future__ import annotations

import base64
import email.parser
import email.policy
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from est_helpers import EstGateway, assert_plain, b64, basic, certs_from_cms, csr_der

from tests.helpers.external_ca import ca_certificate_pem


async def _est_profile(gw: EstGateway, slug: str, body: dict[str, Any]) -> tuple[str, str]:
    """A new profile attached to demo with EST on: its EST base path and passphrase."""
    demo = await gw.api("GET", f"/api/v1/profiles/{gw.bootstrap['profile_id']}")
    await gw.api(
        "POST",
        "/api/v1/profiles",
        {"slug": slug, "policy_id": demo["policy_id"], **body},
        status=201,
    )
    await gw.api("POST", "/api/v1/applications/demo/profiles", {"profile": slug}, status=201)
    settings = f"/api/v1/applications/demo/profiles/{slug}/est"
    await gw.api("PATCH", settings, {"enabled": True})
    password = (await gw.api("POST", settings + "/password", {}, status=201))["password"]
    return f"/.well-known/est/applications/demo/profiles/{slug}", password


async def _count(gw: EstGateway) -> int:
    return int((await gw.api("GET", "/api/v1/applications/demo/certificates?limit=1"))["total"])


async def test_ok_self_signed_serverkeygen(est_gw: EstGateway) -> None:
    base, password = await _est_profile(est_gw, "self", {"issuer_type": "self-signed"})
    der, _ = csr_der("dev.example.com")
    status, headers, body = await est_gw.post(
        "serverkeygen", b64(der), base=base, auth=basic("est", password)
    )
    assert status == 200, body
    raw = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    parts = list(email.parser.BytesParser(policy=email.policy.default).parsebytes(raw).iter_parts())
    key = serialization.load_der_private_key(base64.b64decode(parts[0].get_payload()), None)
    (cert,) = certs_from_cms(parts[1].get_payload().encode())
    assert cert.public_key() == key.public_key()
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)


async def test_fail_self_signed_simpleenroll_and_cacerts(est_gw: EstGateway) -> None:
    base, password = await _est_profile(est_gw, "self", {"issuer_type": "self-signed"})
    before = await _count(est_gw)
    der, _ = csr_der("dev.example.com")
    status, headers, body = await est_gw.post(
        "simpleenroll", b64(der), base=base, auth=basic("est", password)
    )
    assert status == 400
    assert_plain(headers)
    assert b"self-signed" in body and b"not held here" in body
    assert await _count(est_gw) == before
    resp = await est_gw.client.get(f"{base}/cacerts")
    assert resp.status == 400
    assert_plain(dict(resp.headers))
    assert "has no CA certificates" in await resp.text()


async def test_fail_external_ca_simpleenroll(est_gw: EstGateway) -> None:
    pem = ca_certificate_pem("Partner CA")
    ca = await est_gw.api(
        "POST",
        "/api/v1/cas",
        {"kind": "external", "name": "partner", "certificate_pem": pem},
        status=201,
    )
    base, password = await _est_profile(est_gw, "partner", {"ca_id": ca["id"]})
    before = await _count(est_gw)
    der, _ = csr_der("dev.example.com")
    for op in ("simpleenroll", "serverkeygen"):
        status, headers, body = await est_gw.post(
            op, b64(der), base=base, auth=basic("est", password)
        )
        assert status == 409, body
        assert_plain(headers)
        assert b"is external" in body and b"held outside certgate" in body
    assert await _count(est_gw) == before
    # The CA certificate itself is still what cacerts serves (RFC 7030 §4.1.3).
    resp = await est_gw.client.get(f"{base}/cacerts")
    assert resp.status == 200
    assert certs_from_cms(await resp.read()) == [x509.load_pem_x509_certificate(pem.encode())]


async def test_ok_self_signed_serverkeygen_under_approval(est_gw: EstGateway) -> None:
    """The approval cannot issue by itself (the certificate's key signs it, and that key is
    held for the device): the request stays approved until the device repeats it, and that
    repeat gets the certificate signed by the held key."""
    base, password = await _est_profile(est_gw, "self", {"issuer_type": "self-signed"})
    name = "self-approver"
    created = await est_gw.api(
        "POST", "/api/v1/principals", {"name": name, "kind": "user", "product_role": "admin"}, 201
    )
    token = await est_gw.api(
        "POST", f"/api/v1/principals/{created['id']}/tokens", {"name": "t"}, 201
    )
    await est_gw.api(
        "PUT",
        "/api/v1/applications/demo/profiles/self/approval-policy",
        {"steps": [{"approvers": [name], "required": 1}]},
        201,
    )
    der, _ = csr_der("held.example.com")
    auth = basic("est", password)
    status, _, body = await est_gw.post("serverkeygen", b64(der), base=base, auth=auth)
    assert status == 202, body
    requests = "/api/v1/applications/demo/requests"
    (open_request,) = (await est_gw.api("GET", f"{requests}?state=open"))["items"]
    resp = await est_gw.client.post(
        f"{requests}/{open_request['id']}/approve",
        json={"comment": "ok"},
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "approved"
    status, headers, body = await est_gw.post("serverkeygen", b64(der), base=base, auth=auth)
    assert status == 200, body
    raw = f"Content-Type: {headers['Content-Type']}\r\n\r\n".encode() + body
    parts = list(email.parser.BytesParser(policy=email.policy.default).parsebytes(raw).iter_parts())
    key = serialization.load_der_private_key(base64.b64decode(parts[0].get_payload()), None)
    (cert,) = certs_from_cms(parts[1].get_payload().encode())
    assert cert.public_key() == key.public_key() and cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    issued = await est_gw.api("GET", f"{requests}/{open_request['id']}")
    assert issued["state"] == "issued"
