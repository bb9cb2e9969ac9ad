"""EST requirements the other files leave implicit (issue 5): hostile URL segments and
streamed bodies, the rest of the re-enrollment rules (RFC 7030 §4.2.2), which methods a
target accepts or requires, nothing stored by a refused request, the passphrase stored
hashed, and the bootstrap.json EST keys of a first start."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from est_helpers import (
    LABEL,
    NEW,
    SETTINGS,
    Ca,
    EstGateway,
    b64,
    basic,
    certs_from_cms,
    csr_der,
    proxy_header,
)
from sqlalchemy import text

from gateway.appkeys import SERVICES
from gateway.pki.kms import secret_aad
from protocols.est import settings as est_admin


def _plain(headers: dict[str, str]) -> None:
    assert headers["Content-Type"].startswith("text/plain")


async def _count(gw: EstGateway, sql: str) -> int:
    services = gw.client.server.app[SERVICES]
    async with services.db.transaction(read_only=True) as tx:
        return int((await tx.session.execute(text(sql))).scalar_one())


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/.well-known/est/applications/%00/profiles/tls-server/cacerts", id="nul"),
        pytest.param("/.well-known/est/demo%00.tls-server/cacerts", id="label-nul"),
        pytest.param(f"/.well-known/est/applications/demo/profiles/{'x' * 400}/cacerts", id="long"),
        pytest.param(
            "/.well-known/est/applications/d%C3%A9mo/profiles/tls-server/cacerts", id="utf8"
        ),
        pytest.param("/.well-known/est/applications/DEMO/profiles/tls-server/cacerts", id="case"),
    ],
)  # fmt: skip
async def test_fail_404_not_500_for_hostile_segments(est_gw: EstGateway, path: str) -> None:
    """A NUL byte is an error on PostgreSQL, not a miss: such segments never reach it."""
    resp = await est_gw.client.get(path)
    assert resp.status == 404, await resp.text()
    _plain(dict(resp.headers))


async def test_fail_413_streamed_body_without_length(est_gw: EstGateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"A" * 1024

    resp = await est_gw.client.post(
        f"{NEW}/simpleenroll",
        data=chunks(),
        headers={"Content-Type": "application/pkcs10", **est_gw.basic},
    )
    assert resp.status == 413 and "Content-Length" not in resp.request_info.headers
    _plain(dict(resp.headers))
    assert "larger than" in await resp.text()


async def test_fail_refused_enrollments_store_nothing(est_gw: EstGateway) -> None:
    before = await _count(est_gw, "SELECT count(*) FROM certificates")
    requests = await _count(est_gw, "SELECT count(*) FROM certificate_requests")
    der, _ = csr_der("evil.org", sans=["evil.org"])
    for op in ("simpleenroll", "serverkeygen"):
        status, _, _ = await est_gw.post(op, b64(der), auth=est_gw.basic)
        assert status == 403
        status, _, _ = await est_gw.post(op, b64(der[:-4]), auth=est_gw.basic)
        assert status == 400
    assert await _count(est_gw, "SELECT count(*) FROM certificates") == before
    assert await _count(est_gw, "SELECT count(*) FROM certificate_requests") == requests


async def test_ok_label_form_enrolls(est_gw: EstGateway) -> None:
    cert = await est_gw.enroll("label.example.com", base=LABEL)
    der, _ = csr_der("label.example.com")
    status, _, body = await est_gw.post(
        "simplereenroll", b64(der), base=LABEL, headers=proxy_header(cert)
    )
    assert status == 200, body


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
    _plain(headers)


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


async def test_ok_passphrase_is_stored_hashed(est_gw: EstGateway) -> None:
    services = est_gw.client.server.app[SERVICES]
    async with services.db.transaction(read_only=True) as tx:
        rows = (
            await tx.session.execute(
                text("SELECT id FROM secrets WHERE purpose = :p"),
                {"p": est_admin.PASSWORD_PURPOSE},
            )
        ).all()
        secrets = [await tx.secrets.get(uuid.UUID(str(row[0]))) for row in rows]
    assert secrets
    for secret in secrets:
        assert secret is not None
        assert est_gw.password.encode() not in secret.ciphertext
        stored = await services.kms.decrypt(
            secret.project_id, secret.ciphertext, secret_aad(secret.id)
        )
        assert stored.startswith(b"scrypt$") and est_gw.password.encode() not in stored


@pytest.mark.first_start
async def test_ok_first_start_bootstrap_json_est_keys(fresh_gw: EstGateway) -> None:
    """`certgate serve`'s first start enables EST on the demo attachment and the legacy
    profile and writes working URLs and credentials into bootstrap.json."""
    boot = fresh_gw.bootstrap
    forms = [
        (boot["est_base_url"], boot["est_username"], boot["est_password"]),
        (boot["est_label_url"], boot["est_username"], boot["est_password"]),
        (boot["legacy_est_base_url"], boot["legacy_est_username"], boot["legacy_est_password"]),
    ]
    for i, (url, user, password) in enumerate(forms):
        assert len(password) >= 8
        der, _ = csr_der(f"boot{i}.example.com")
        status, _, body = await fresh_gw.post(
            "simpleenroll",
            b64(der),
            base=urllib.parse.urlsplit(url).path,
            auth=basic(user, password),
        )
        assert status == 200, (url, body)
