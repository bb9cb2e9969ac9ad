"""Management resources through the REST API: CAs, policies, profiles and applications
created and used for an issuance, refused input leaving nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.x509util import make_csr


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
