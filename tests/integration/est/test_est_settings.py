"""The EST settings REST API: validation, passphrase handling (stored hashed, shown once),
and the EST keys of bootstrap.json."""

from __future__ import annotations

import json
import urllib.parse
import uuid

import pytest
from est_helpers import SETTINGS, EstGateway, b64, basic, csr_der
from sqlalchemy import text

from gateway.appkeys import SERVICES
from gateway.pki.kms import secret_aad
from protocols.est import settings as est_admin


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"password": "short"}, "8 to 256", id="fail/short"),
        pytest.param({"password": 12345678}, "8 to 256", id="fail/type"),
    ],
)
async def test_fail_password_rules(est_gw, body: dict, fragment: str) -> None:
    data = await est_gw.api("POST", SETTINGS + "/password", body, status=400)
    assert fragment in data["error"]["message"]


async def test_fail_unknown_setting(est_gw) -> None:
    data = await est_gw.api("PATCH", SETTINGS, {"magic": True}, status=400)
    assert "unknown EST settings" in data["error"]["message"]


async def test_ok_passphrase_never_shown_again(est_gw) -> None:
    created = await est_gw.api("POST", SETTINGS + "/password", {"password": "rotated-pass"}, 201)
    assert created["password"] == "rotated-pass"
    view = await est_gw.api("GET", SETTINGS)
    assert view["has_password"] is True and view["enabled"] is True
    attached = await est_gw.api("GET", "/api/v1/applications/demo/profiles")
    audit = await est_gw.api("GET", "/api/v1/audit?limit=200")
    for blob in (view, attached, audit):
        text = json.dumps(blob)
        assert "rotated-pass" not in text and "scrypt$" not in text
    # The old passphrase stops working at once (rotation); the new one works.
    der, _ = csr_der()
    status, _, _ = await est_gw.post("simpleenroll", b64(der), auth=est_gw.basic)
    assert status == 401
    status, _, body = await est_gw.post("simpleenroll", b64(der), auth=basic("est", "rotated-pass"))
    assert status == 200, body


async def test_fail_settings_need_a_token(est_gw) -> None:
    resp = await est_gw.client.patch(SETTINGS, json={"enabled": False})
    assert resp.status == 401


async def test_ok_bootstrap_est_keys(est_gw) -> None:
    """protocols.est.settings.bootstrap_est: what bootstrap.json gets (DESIGN.md, Contract)."""
    from gateway.appkeys import SERVICES
    from gateway.services.audit import SYSTEM
    from gateway.services.certificates import resolve
    from protocols.est import settings as est_admin

    services = est_gw.client.server.app[SERVICES]
    target = await resolve(services, "demo", "tls-server")
    async with services.db.transaction() as tx:
        data = await est_admin.bootstrap_est(
            services, tx, SYSTEM, target.application, target.profile, target.profile
        )
    assert set(data) == {
        "est_base_url",
        "est_label_url",
        "est_username",
        "est_password",
        "legacy_est_base_url",
        "legacy_est_username",
        "legacy_est_password",
    }
    assert data["est_label_url"].endswith("/.well-known/est/demo.tls-server")
    assert data["legacy_est_base_url"].endswith(f"/.well-known/est/{target.profile.id}")
    der, _ = csr_der("boot.example.com")
    status, _, body = await est_gw.post(
        "simpleenroll", b64(der), auth=basic(data["est_username"], data["est_password"])
    )
    assert status == 200, body
    status, _, body = await est_gw.post(
        "simpleenroll",
        b64(der),
        base=f"/.well-known/est/{target.profile.id}",
        auth=basic(data["legacy_est_username"], data["legacy_est_password"]),
    )
    assert status == 200, body


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
