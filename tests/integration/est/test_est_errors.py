"""Every EST error path answers text/plain a device developer can act on (issue 5)."""

from __future__ import annotations

import base64

import pytest
from est_helpers import NEW, SETTINGS, Ca, b64, basic, csr_der, proxy_header


def _plain(headers: dict[str, str]) -> None:
    assert headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        pytest.param(
            "/.well-known/est/applications/nope/profiles/tls-server/cacerts",
            b"no EST enrollment",
            id="fail/unknown-app",
        ),
        pytest.param(
            "/.well-known/est/applications/demo/profiles/nope/cacerts",
            b"no EST enrollment",
            id="fail/unknown-profile",
        ),
        pytest.param("/.well-known/est/demo.nope/cacerts", b"no EST enrollment", id="fail/label"),
        pytest.param("/.well-known/est/nodot/cacerts", b"unknown EST label", id="fail/bad-label"),
        pytest.param(
            "/.well-known/est/00000000-0000-4000-8000-000000000000/cacerts",
            b"no EST enrollment for profile",
            id="fail/unknown-legacy-profile",
        ),
        pytest.param(f"{NEW}/fullcmc", b"unknown EST operation", id="fail/unknown-op"),
    ],
)
async def test_fail_404(est_gw, path: str, fragment: bytes) -> None:
    resp = await est_gw.client.get(path)
    assert resp.status == 404
    _plain(dict(resp.headers))
    assert fragment in await resp.read()


async def test_fail_404_when_est_disabled(est_gw) -> None:
    await est_gw.api("PATCH", SETTINGS, {"enabled": False})
    resp = await est_gw.client.get(f"{NEW}/cacerts")
    assert resp.status == 404
    assert b"EST not enabled" in await resp.read()


async def test_fail_405_wrong_method(est_gw) -> None:
    resp = await est_gw.client.get(f"{NEW}/simpleenroll")
    assert resp.status == 405 and resp.headers["Allow"] == "POST"
    resp = await est_gw.client.post(f"{NEW}/cacerts")
    assert resp.status == 405 and resp.headers["Allow"] == "GET"


@pytest.mark.parametrize("op", ["simpleenroll", "serverkeygen"])
async def test_fail_401_without_credentials(est_gw, op: str) -> None:
    der, _ = csr_der()
    status, headers, body = await est_gw.post(op, b64(der))
    assert status == 401
    _plain(headers)
    assert headers["WWW-Authenticate"] == 'Basic realm="certgate EST demo.tls-server"'
    assert b"no credentials were sent" in body


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(("est", "wrong-passphrase"), id="fail/password"),
        pytest.param(("someone", None), id="fail/username"),
    ],
)
async def test_fail_401_wrong_basic(est_gw, auth: tuple[str, str | None]) -> None:
    user, password = auth
    der, _ = csr_der()
    status, headers, body = await est_gw.post(
        "simpleenroll", b64(der), auth=basic(user, password or est_gw.password)
    )
    assert status == 401 and "WWW-Authenticate" in headers
    assert b"wrong EST username or passphrase" in body
    assert est_gw.password.encode() not in body


async def test_fail_400_malformed_authorization(est_gw) -> None:
    der, _ = csr_der()
    status, _, body = await est_gw.post(
        "simpleenroll", b64(der), auth={"Authorization": "Basic !!!notbase64"}
    )
    assert status == 400 and b"not valid base64" in body


async def test_fail_401_when_no_passphrase_is_set(est_gw) -> None:
    # A fresh target with EST on but no passphrase: the legacy profile.
    profile_id = est_gw.bootstrap["profile_id"]
    await est_gw.api("PATCH", f"/api/v1/profiles/{profile_id}/est", {"enabled": True})
    der, _ = csr_der()
    status, _, body = await est_gw.post(
        "simpleenroll", b64(der), base=f"/.well-known/est/{profile_id}", auth=est_gw.basic
    )
    assert status == 401 and b"no EST passphrase is set" in body


async def test_fail_415_wrong_content_type(est_gw) -> None:
    der, _ = csr_der()
    status, headers, body = await est_gw.post(
        "simpleenroll", b64(der), auth=est_gw.basic, content_type="application/json"
    )
    assert status == 415
    _plain(headers)
    assert b"application/pkcs10" in body


async def test_fail_413_oversized(est_gw) -> None:
    status, headers, body = await est_gw.post("simpleenroll", b"A" * (70 * 1024), auth=est_gw.basic)
    assert status == 413
    _plain(headers)
    assert b"larger than" in body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"%%% not base64 %%%", b"neither PEM, DER nor base64", id="fail/base64"),
        pytest.param(base64.b64encode(b"hello world"), b"does not parse", id="fail/not-pkcs10"),
        pytest.param(b"", b"CSR is empty", id="fail/empty"),
    ],
)
async def test_fail_400_malformed_csr(est_gw, body: bytes, fragment: bytes) -> None:
    status, headers, out = await est_gw.post("simpleenroll", body, auth=est_gw.basic)
    assert status == 400, out
    _plain(headers)
    assert fragment in out


async def test_fail_400_bad_csr_signature(est_gw) -> None:
    der, _ = csr_der()
    tampered = der[:-3] + bytes([der[-3] ^ 0xFF]) + der[-2:]
    status, headers, body = await est_gw.post("simpleenroll", b64(tampered), auth=est_gw.basic)
    assert status == 400
    _plain(headers)
    assert b"signature" in body


async def test_fail_403_policy_denial_lists_rules(est_gw) -> None:
    der, _ = csr_der("evil.org", sans=["evil.org", "also.evil.net"])
    status, headers, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 403
    _plain(headers)
    text = body.decode()
    assert "violates the profile's policy" in text
    assert "evil.org" in text and "also.evil.net" in text
    assert text.count("\n- ") >= 2


async def test_fail_403_plain_http_enrollment(plain_gw) -> None:
    resp = await plain_gw.client.get(f"{NEW}/cacerts")
    assert resp.status == 200  # public data: allowed over plain HTTP (documented)
    der, _ = csr_der()
    status, headers, body = await plain_gw.post("simpleenroll", b64(der), auth=plain_gw.basic)
    assert status == 403
    _plain(headers)
    assert b"requires HTTPS" in body


async def test_fail_proxy_header_ignored_from_untrusted_address(plain_gw, est_gw) -> None:
    cert = await est_gw.enroll("p.example.com")
    der, _ = csr_der("p.example.com")
    status, _, body = await plain_gw.post("simplereenroll", b64(der), headers=proxy_header(cert))
    assert status == 403 and b"requires HTTPS" in body


async def test_fail_400_garbled_proxy_header(est_gw) -> None:
    der, _ = csr_der()
    status, _, body = await est_gw.post(
        "simplereenroll", b64(der), headers={"X-SSL-Client-Cert": "garbage%%"}
    )
    assert status == 400 and b"X-SSL-Client-Cert" in body


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


@pytest.mark.parametrize("expired", [False, True], ids=["fail/unknown-ca", "fail/expired"])
async def test_fail_bootstrap_cert_rejected(est_gw, expired: bool) -> None:
    factory = Ca()
    await est_gw.api(
        "PATCH", SETTINGS, {"bootstrap_ca_pem": factory.pem, "accepted_auth": ["client_cert"]}
    )
    device = factory.issue("b.example.com", expired=True) if expired else Ca().issue("b.x")
    der, _ = csr_der("b.example.com")
    status, headers, body = await est_gw.post(
        "simpleenroll", b64(der), headers=proxy_header(device), auth=est_gw.basic
    )
    assert status == 401
    assert "WWW-Authenticate" not in headers  # Basic is not accepted here
    expected = b"expired" if expired else b"not issued by a configured bootstrap CA"
    assert expected in body


async def test_fail_tls_unique_required_without_tls12(est_gw) -> None:
    await est_gw.api("PATCH", SETTINGS, {"require_tls_unique": True})
    der, _ = csr_der()
    status, _, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 400 and b"RFC 7030 \xc2\xa73.5" in body
