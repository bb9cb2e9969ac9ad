"""simplereenroll (RFC 7030 §4.2.2): renewal with the current certificate, and every rule
that refuses it (no certificate, another subject, revoked, expired, foreign, another
target's, HTTP Basic still required)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from est_helpers import (
    SETTINGS,
    Ca,
    EstGateway,
    assert_plain,
    b64,
    basic,
    certs_from_cms,
    csr_der,
    proxy_header,
)

from gateway.appkeys import SERVICES


async def test_ok_simplereenroll_with_proxy_header(est_gw) -> None:
    old = await est_gw.enroll("dev2.example.com")
    der, _ = csr_der("dev2.example.com")
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(old))
    assert status == 200, body
    (new,) = certs_from_cms(body)
    assert new.serial_number != old.serial_number and new.subject == old.subject
    listed = await est_gw.api("GET", "/api/v1/applications/demo/certificates")
    item = next(i for i in listed["items"] if i["serial"] == format(new.serial_number, "x"))
    assert item["renewed_from"] is not None


async def test_fail_reenroll_without_cert(est_gw) -> None:
    der, _ = csr_der()
    status, _, body = await est_gw.post("simplereenroll", b64(der), auth=est_gw.basic)
    assert status == 401 and b"RFC 7030 \xc2\xa74.2.2" in body


async def test_fail_reenroll_subject_mismatch(est_gw) -> None:
    cert = await est_gw.enroll("m.example.com")
    der, _ = csr_der("other.example.com")
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(cert))
    assert status == 400 and b"exactly the subject and subjectAltName" in body
    der, _ = csr_der("m.example.com", sans=["m.example.com", "x.example.com"])
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(cert))
    assert status == 400


async def test_fail_reenroll_revoked(est_gw) -> None:
    cert = await est_gw.enroll("r.example.com")
    listed = await est_gw.api("GET", "/api/v1/applications/demo/certificates")
    item = next(i for i in listed["items"] if i["serial"] == format(cert.serial_number, "x"))
    await est_gw.api(
        "POST",
        f"/api/v1/applications/demo/certificates/{item['id']}/revoke",
        {"reason": "superseded"},
    )
    der, _ = csr_der("r.example.com")
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(cert))
    assert status == 401 and b"has been revoked" in body


async def test_fail_reenroll_foreign_cert(est_gw) -> None:
    foreign = Ca().issue("f.example.com")
    der, _ = csr_der("f.example.com")
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(foreign))
    assert status == 401 and b"not issued by this gateway" in body


async def test_fail_reenroll_expired_certificate(est_gw: EstGateway, monkeypatch: Any) -> None:
    cert = await est_gw.enroll("old.example.com")
    clock = est_gw.client.server.app[SERVICES].clock
    later = clock.now() + timedelta(days=91)  # the demo profile issues for 90 days
    monkeypatch.setattr(clock, "now", lambda: later)
    der, _ = csr_der("old.example.com")
    status, headers, body = await est_gw.post(
        "simplereenroll", b64(der), headers=proxy_header(cert)
    )
    assert status == 401 and b"has expired" in body
    assert_plain(headers)


async def test_fail_reenroll_with_another_targets_certificate(est_gw: EstGateway) -> None:
    """Same CA, but issued through the legacy profile URL: not this application's."""
    profile_id = est_gw.bootstrap["profile_id"]
    path = f"/api/v1/profiles/{profile_id}/est"
    await est_gw.api("PATCH", path, {"enabled": True})
    await est_gw.api("POST", path + "/password", {"password": "legacy-pass"}, status=201)
    der, _ = csr_der("elsewhere.example.com")
    status, _, body = await est_gw.post(
        "simpleenroll",
        b64(der),
        base=f"/.well-known/est/{profile_id}",
        auth=basic("est", "legacy-pass"),
    )
    assert status == 200, body
    (cert,) = certs_from_cms(body)
    der, _ = csr_der("elsewhere.example.com")
    status, _, body = await est_gw.post("simplereenroll", b64(der), headers=proxy_header(cert))
    assert status == 401 and b"belongs to another application or profile" in body


async def test_fail_reenroll_basic_required_too(est_gw: EstGateway) -> None:
    cert = await est_gw.enroll("both.example.com")
    await est_gw.api("PATCH", SETTINGS, {"required_auth": ["basic"]})
    der, _ = csr_der("both.example.com")
    status, headers, body = await est_gw.post(
        "simplereenroll", b64(der), headers=proxy_header(cert)
    )
    assert status == 401 and b"also requires HTTP Basic" in body
    assert headers["WWW-Authenticate"].startswith("Basic realm=")
    status, _, body = await est_gw.post(
        "simplereenroll", b64(der), headers=proxy_header(cert), auth=est_gw.basic
    )
    assert status == 200, body
