"""Who may enroll over EST: HTTP Basic with the target's passphrase (RFC 7030 §3.2.3), a
client certificate from a bootstrap CA, directly or through a trusted proxy header
(§3.3.2), which of the two a target accepts or requires, HTTPS for enrollment, and
tls-unique proof-of-possession (§3.5) where TLS 1.2 is not in use."""

from __future__ import annotations

import pytest
from est_helpers import (
    NEW,
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


async def test_ok_configured_proxy_header_name(header_gw) -> None:
    """server.client_cert_header names the proxy's header; the default one is then ignored."""
    old = await header_gw.enroll("dev9.example.com")
    der, _ = csr_der("dev9.example.com")
    default = proxy_header(old)
    status, _, body = await header_gw.post("simplereenroll", b64(der), headers=default)
    assert status == 401, body
    renamed = {"X-Client-Cert": default["X-SSL-Client-Cert"]}
    status, _, body = await header_gw.post("simplereenroll", b64(der), headers=renamed)
    assert status == 200, body
    (new,) = certs_from_cms(body)
    assert new.serial_number != old.serial_number and new.subject == old.subject


async def test_ok_simpleenroll_with_bootstrap_client_cert(est_gw) -> None:
    factory = Ca()
    await est_gw.api("PATCH", SETTINGS, {"bootstrap_ca_pem": factory.pem})
    device = factory.issue("dev3.example.com")
    der, _ = csr_der("dev3.example.com")
    status, _, body = await est_gw.post("simpleenroll", b64(der), headers=proxy_header(device))
    assert status == 200, body


async def test_ok_client_cert_and_basic_both_required(est_gw) -> None:
    factory = Ca()
    await est_gw.api(
        "PATCH",
        SETTINGS,
        {"bootstrap_ca_pem": factory.pem, "required_auth": ["basic", "client_cert"]},
    )
    device = factory.issue("dev4.example.com")
    der, _ = csr_der("dev4.example.com")
    status, _, body = await est_gw.post(
        "simpleenroll", b64(der), headers=proxy_header(device), auth=est_gw.basic
    )
    assert status == 200, body
    status, _, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 401 and b"basic and client_cert" in body


@pytest.mark.parametrize("op", ["simpleenroll", "serverkeygen"])
async def test_fail_401_without_credentials(est_gw, op: str) -> None:
    der, _ = csr_der()
    status, headers, body = await est_gw.post(op, b64(der))
    assert status == 401
    assert_plain(headers)
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


async def test_fail_403_plain_http_enrollment(plain_gw) -> None:
    resp = await plain_gw.client.get(f"{NEW}/cacerts")
    assert resp.status == 200  # public data: allowed over plain HTTP (documented)
    der, _ = csr_der()
    status, headers, body = await plain_gw.post("simpleenroll", b64(der), auth=plain_gw.basic)
    assert status == 403
    assert_plain(headers)
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


async def test_fail_client_cert_not_accepted_when_basic_only(est_gw: EstGateway) -> None:
    factory = Ca()
    await est_gw.api(
        "PATCH", SETTINGS, {"bootstrap_ca_pem": factory.pem, "accepted_auth": ["basic"]}
    )
    der, _ = csr_der("dev.example.com")
    status, headers, body = await est_gw.post(
        "simpleenroll", b64(der), headers=proxy_header(factory.issue("dev.example.com"))
    )
    assert status == 401 and b"authentication required (basic)" in body
    assert "WWW-Authenticate" in headers


async def test_fail_client_cert_required_basic_alone_refused(est_gw: EstGateway) -> None:
    await est_gw.api("PATCH", SETTINGS, {"required_auth": ["client_cert"]})
    der, _ = csr_der("dev.example.com")
    status, _, body = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 401 and b"authentication required (client_cert)" in body
