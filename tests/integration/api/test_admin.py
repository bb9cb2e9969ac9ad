"""Bootstrap, secrets at rest, management resources, auth failures, OpenAPI, health."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from gateway.api.routing import ROUTES, Permission
from tests.helpers.x509util import make_csr

CONTRACT_KEYS = {
    "admin_token",
    "base_url",
    "application",
    "profile",
    "profile_id",
    "ca_chain_pem",
    "root_ca_path",
}


@pytest.mark.first_start
async def test_ok_bootstrap_files(gateway) -> None:
    path = gateway.config.home / "bootstrap.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert CONTRACT_KEYS <= set(gateway.bootstrap)
    assert (
        gateway.bootstrap["application"] == "demo" and gateway.bootstrap["profile"] == "tls-server"
    )
    assert (
        (gateway.config.home / "root-ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    )
    assert stat.S_IMODE(os.stat(gateway.config.home / "root.key").st_mode) == 0o600
    cas = (await gateway.get("/api/v1/cas"))["items"]
    assert sorted(c["kind"] for c in cas) == ["intermediate", "root"]
    projects = (await gateway.get("/api/v1/projects"))["items"]
    assert [p["status"] for p in projects] == ["active"]


async def test_ok_no_secret_in_raw_database(gateway) -> None:
    if not gateway.config.database_url.startswith("sqlite"):
        pytest.skip("scans the SQLite file; PostgreSQL storage is the same schema")
    services = gateway.services
    issued = await gateway.post(gateway.issue_path(), {"sans": ["k.test"]}, status=201)
    needles: list[bytes] = []
    async with services.db.transaction() as tx:
        cas = await tx.cas.list()
    for ca in cas:
        key = await services.signer.load_ca_key(ca)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        needles += [der, der[-32:], base64.b64encode(der)[:40]]
    token_secret = gateway.bootstrap["admin_token"].split("_", 2)[2]
    needles += [token_secret.encode(), (gateway.config.home / "root.key").read_bytes().strip()]
    gen_key = serialization.load_pem_private_key(issued["private_key_pem"].encode(), None)
    needles.append(
        gen_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )[-32:]
    )
    await services.db.close()  # flush WAL readers; the files are what an attacker would read
    db_file = Path(gateway.config.database_url.split("///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert len(raw) > 10_000
    for needle in needles:
        assert needle not in raw


@pytest.mark.parametrize(
    "header, code",
    [
        (None, "unauthorized"),
        ("Bearer nope", "unauthorized"),
        ("Basic abc", "unauthorized"),
        ("Bearer cgt_00000000000000000000000000000000_x", "unauthorized"),
    ],
    ids=["fail/none", "fail/malformed", "fail/scheme", "fail/unknown"],
)
async def test_fail_auth(gateway, header: str | None, code: str) -> None:
    headers = {"Authorization": header} if header else {}
    resp = await gateway.client.get("/api/v1/cas", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == code
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_fail_revoked_token_and_non_admin(gateway) -> None:
    user = await gateway.post(
        "/api/v1/principals", {"name": "bob", "product_role": "member"}, status=201
    )
    token = await gateway.post(f"/api/v1/principals/{user['id']}/tokens", {"name": "t"}, status=201)
    denied = await gateway.get("/api/v1/cas", token=token["token"], status=403)
    assert denied["error"]["code"] == "forbidden"
    await gateway.post(f"/api/v1/tokens/{token['id']}/revoke", {}, status=200)
    revoked = await gateway.get("/api/v1/cas", token=token["token"], status=401)
    assert revoked["error"]["code"] == "token_revoked"
    expired = await gateway.post(
        f"/api/v1/principals/{user['id']}/tokens",
        {"expires_at": "2001-01-01T00:00:00Z"},
        status=400,
    )
    assert expired["error"]["code"] == "invalid_input"


async def test_ok_create_ca_policy_profile_app_and_issue(gateway, tmp_path: Path) -> None:
    root = await gateway.post(
        "/api/v1/cas", {"name": "r2", "kind": "root", "key_type": "rsa-3072"}, status=201
    )
    inter = await gateway.post(
        "/api/v1/cas",
        {"name": "i2", "kind": "intermediate", "parent_id": root["id"], "key_type": "ec-p384"},
        status=201,
    )
    assert inter["chain_pem"] == root["certificate_pem"]
    policy = await gateway.post(
        "/api/v1/policies",
        {
            "name": "clients",
            "rules": {
                "dns": {"allow": ["*.corp.test"]},
                "allowed_extended_key_usages": ["client_auth"],
                "max_validity_days": 30,
            },
        },
        status=201,
    )
    profile = await gateway.post(
        "/api/v1/profiles",
        {
            "slug": "mtls",
            "ca_id": inter["id"],
            "policy_id": policy["id"],
            "validity_days": 7,
            "renew_before_days": 2,
            "key_usages": ["digital_signature"],
            "extended_key_usages": ["client_auth"],
        },
        status=201,
    )
    app = await gateway.post("/api/v1/applications", {"slug": "payments-api"}, status=201)
    await gateway.post(
        f"/api/v1/applications/{app['slug']}/profiles", {"profile": profile["slug"]}, status=201
    )
    issued = await gateway.post(
        gateway.issue_path("payments-api", "mtls"),
        {"csr": make_csr("svc.corp.test")[0]},
        status=201,
    )
    assert issued["ca_id"] == inter["id"]
    from tests.helpers.x509util import openssl_verify

    result = openssl_verify(
        tmp_path, root["certificate_pem"], issued["chain_pem"], issued["certificate_pem"]
    )
    assert result.returncode == 0, result.stderr
    # The demo app cannot see payments-api's certificate.
    await gateway.get(f"/api/v1/applications/demo/certificates/{issued['id']}", status=404)


@pytest.mark.parametrize(
    "path, body, code, status",
    [
        ("/api/v1/applications", {"slug": "demo"}, "conflict", 409),
        ("/api/v1/applications", {"slug": "Bad Slug"}, "invalid_input", 400),
        ("/api/v1/applications", {"slug": "demo2\n"}, "invalid_input", 400),
        ("/api/v1/policies", {"name": "p", "rules": {"dns": {"allow": "x"}}}, "invalid_input", 400),
        ("/api/v1/policies", {"name": "p", "rules": {"bogus": 1}}, "invalid_input", 400),
        ("/api/v1/cas", {"name": "x", "key_type": "dsa"}, "invalid_input", 400),
        (
            "/api/v1/cas",
            {
                "name": "x",
                "kind": "intermediate",
                "parent_id": "00000000-0000-0000-0000-000000000000",
            },
            "not_found",
            404,
        ),
        (
            "/api/v1/cas/import",
            {"name": "x", "certificate_pem": "junk", "private_key_pem": "junk"},
            "invalid_input",
            400,
        ),
        (
            "/api/v1/profiles",
            {
                "slug": "p1",
                "ca_id": "00000000-0000-0000-0000-000000000000",
                "policy_id": "00000000-0000-0000-0000-000000000000",
            },
            "not_found",
            404,
        ),
    ],
    ids=[
        "fail/dup-app",
        "fail/slug",
        "fail/slug-trailing-newline",
        "fail/rules-type",
        "fail/rules-unknown",
        "fail/key-type",
        "fail/no-parent",
        "fail/import-junk",
        "fail/profile-refs",
    ],
)
async def test_fail_management_input(
    gateway, path: str, body: dict, code: str, status: int
) -> None:
    before = await gateway.get("/api/v1/applications")
    data = await gateway.post(path, body, status=status)
    assert data["error"]["code"] == code
    assert (await gateway.get("/api/v1/applications")) == before


async def test_fail_duplicate_ca_name_leaves_nothing(gateway) -> None:
    count = len((await gateway.get("/api/v1/cas"))["items"])
    data = await gateway.post("/api/v1/cas", {"name": "root", "kind": "root"}, status=409)
    assert data["error"]["code"] == "conflict"
    assert len((await gateway.get("/api/v1/cas"))["items"]) == count


async def test_ok_openapi_covers_every_route(gateway) -> None:
    doc = await gateway.get("/api/v1/openapi.json")
    table = gateway.client.server.app[ROUTES]
    for route in table.values():
        if route.path.startswith("/api/"):
            assert route.method.lower() in doc["paths"][route.path], route.name
    registered = {
        (r.method, r.resource.canonical)
        for r in gateway.client.server.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/")
        and r.method != "HEAD"
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert registered == documented


def _is_protocol_route(name: str | None) -> bool:
    return bool(name) and name.replace("_", ".").split(".")[0] in {"acme", "est", "scep"}


async def test_ok_every_route_declares_permission(gateway) -> None:
    table = gateway.client.server.app[ROUTES]
    for route in gateway.client.server.app.router.routes():
        if route.method == "HEAD" or _is_protocol_route(route.name):
            continue  # a protocol authenticates its own clients (protocols/<p>/install.py)
        assert route.name in table, (
            f"{route.method} {route.resource.canonical} has no declared permission"
        )
        assert isinstance(table[route.name].permission, Permission)


async def test_ok_health_ready_metrics(gateway) -> None:
    assert (await (await gateway.client.get("/healthz")).json())["status"] == "ok"
    assert (await (await gateway.client.get("/readyz")).json())["database"] == "ok"
    await gateway.post(gateway.issue_path(), {"sans": ["m.test"]}, status=201)
    text = await (await gateway.client.get("/metrics")).text()
    assert 'certgate_certificates_issued_total{method="api",profile="tls-server"} 1.0' in text
    assert "certgate_http_request_duration_seconds_bucket" in text


async def test_ok_unknown_api_path_is_json_404(gateway) -> None:
    resp = await gateway.client.get("/api/v1/nothing-here", headers=gateway.auth)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
