"""Bad input of every kind is a 400 with the one JSON error form (and `violations` where a
model says which field), never a 500: on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

DEMO = "/api/v1/applications/demo"
DEEP = "[" * 100_000 + "]" * 100_000


async def _raw(gateway: Any, method: str, path: str, data: bytes | str | None) -> Any:
    resp = await gateway.client.request(
        method,
        path,
        data=data,
        headers={**gateway.auth, "Content-Type": "application/json"},
    )
    assert resp.status == 400, (resp.status, await resp.text())
    body = await resp.json()
    assert set(body["error"]) >= {"code", "message"}
    return body["error"]


@pytest.mark.parametrize(
    "path, data",
    [
        pytest.param("/api/v1/projects", DEEP, id="fail/deeply-nested"),
        pytest.param(
            "/api/v1/projects", '{"name": {"a": ' * 5000 + "1" + "}" * 5001, id="fail/deep-object"
        ),
        pytest.param(
            "/api/v1/projects", '{"name": "x", "active": ' + "9" * 5000 + "}", id="fail/5000-digits"
        ),
        pytest.param(
            DEMO + "/profiles/tls-server/certificates",
            '{"sans": ["a.test"], "validity_days": ' + "9" * 5000 + "}",
            id="fail/5000-digit-validity",
        ),
        pytest.param(
            "/api/v1/policies",
            '{"name": "p", "rules": {"x": ' + "9" * 5000 + "}}",
            id="fail/5000-digits-in-rules",
        ),
        pytest.param("/api/v1/projects", b"\xff\xfe", id="fail/not-utf8"),
        pytest.param("/api/v1/projects", "[1]", id="fail/not-an-object"),
    ],
)
async def test_fail_malformed_json(gateway: Any, path: str, data: Any) -> None:
    error = await _raw(gateway, "POST", path, data)
    assert error["code"] == "invalid_input"


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        (
            "POST",
            DEMO + "/profiles/tls-server/certificates",
            {"sans": ["a.test"], "validity_days": 3_000_000},
            "validity_days",
        ),
        ("POST", "/api/v1/applications", {"slug": "x", "name": {"a": 1}}, "name"),
        ("POST", "/api/v1/projects", {"name": ["x"]}, "name"),
        ("POST", "/api/v1/principals", {"name": {"first": "x"}}, "name"),
        ("POST", "/api/v1/projects", {"name": "a\u0000b"}, "name"),
        ("POST", "/api/v1/applications", {"slug": "nul", "name": "a\u0000b"}, "name"),
        (
            "POST",
            "/api/v1/me/tokens",
            {"name": "t", "expires_at": "0001-01-01T00:00:00Z"},
            "expires_at",
        ),
        (
            "POST",
            "/api/v1/me/tokens",
            {"name": "t", "expires_at": "9999-12-31T23:59:59Z"},
            "expires_at",
        ),
        ("POST", "/api/v1/me/tokens", {"name": "t\u0000"}, "name"),
        (
            "POST",
            DEMO + "/certificates/00000000-0000-0000-0000-000000000000/revoke",
            {"reason": "bored"},
            "reason",
        ),
        (
            "POST",
            "/api/v1/policies",
            {"name": "p", "rules": {"dns": {"allow": ["a\u0000"]}}},
            "rules",
        ),
        (
            "PATCH",
            DEMO + "/profiles/tls-server",
            {"methods": {"api": {"enabled": "\u0000"}}},
            "methods",
        ),
        ("POST", "/api/v1/cas", {"name": "c", "validity_days": 3_000_000}, "validity_days"),
    ],
)
async def test_fail_model_violations(
    gateway: Any, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    import json

    error = await _raw(gateway, method, path, json.dumps(body))
    assert error["code"] == "invalid_input"
    assert error["violations"][0]["field"].split(".")[0] == field


@pytest.mark.parametrize(
    "query",
    [
        "offset=9223372036854775808",
        "offset=" + "9" * 5000,
        "limit=0",
        "expiring_before=0001-01-01T00:00:00Z",
        "expiring_before=9999-12-31T23:59:59Z",
        "q=%00",
        "profile=%00",
        "status=bogus",
    ],
)
async def test_fail_bad_query(gateway: Any, query: str) -> None:
    data = await gateway.get(f"{DEMO}/certificates?{query}", status=400)
    assert data["error"]["code"] == "invalid_input"
    assert data["error"]["violations"]


@pytest.mark.parametrize(
    "query", ["since=0001-01-01T00:00:00Z", "actor=%00", "offset=99999999999999999999"]
)
async def test_fail_bad_audit_query(gateway: Any, query: str) -> None:
    data = await gateway.get(f"/api/v1/audit?{query}", status=400)
    assert data["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("query", ["actor=%ED%A0%80", "q=%ff%fe", "action=%C0%80"])
async def test_ok_undecodable_query_is_not_a_server_error(gateway: Any, query: str) -> None:
    path = "/api/v1/audit" if not query.startswith("q=") else f"{DEMO}/certificates"
    resp = await gateway.client.get(f"{path}?{query}", headers=gateway.auth)
    assert resp.status in (200, 400), await resp.text()


async def test_fail_nul_in_path_slug_is_404(gateway: Any) -> None:
    data = await gateway.get("/api/v1/applications/de%00mo/certificates", status=404)
    assert data["error"]["code"] == "not_found"


async def test_ok_openapi_31_declares_models_and_errors(gateway: Any) -> None:
    doc = await gateway.get("/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.1")
    error = doc["components"]["schemas"]["Error"]
    assert "violations" in error["properties"]["error"]["properties"]
    issue = doc["paths"]["/api/v1/applications/{app}/profiles/{profile}/certificates"]["post"]
    assert {"201", "202", "400", "401", "403", "404"} <= set(issue["responses"])
    schemas = doc["components"]["schemas"]
    assert set(schemas["RevocationReason"]["enum"]) >= {"key_compromise", "superseded"}
    assert set(schemas["AppRole"]["enum"]) == {"admin", "operator", "auditor"}
    assert "ec-p256" in schemas["KeyType"]["enum"]
    assert schemas["MemberBody"]["required"] == ["principal", "role"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                if code.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Error", (method, path, code)
                elif code != "204":
                    assert response["content"]["application/json"]["schema"], (method, path)
