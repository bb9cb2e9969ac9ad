"""The audit log: REST queries scoped by role, filters, no secrets, and `certgate audit list`."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from tests.integration.api.conftest import Gateway

MEMBERS = "/api/v1/applications/{app}/members"


def secret_of(token: str) -> str:
    """The secret part of cgt_<id>_<secret> (the secret itself may contain "_")."""
    secret = token.split("_", 2)[2]
    assert len(secret) >= 40
    return secret


async def user(gw: Gateway, name: str, app: str | None = None, role: str = "auditor") -> str:
    principal = await gw.post("/api/v1/principals", {"name": name, "product_role": "member"})
    if app:
        await gw.post(MEMBERS.format(app=app), {"principal": name, "role": role}, status=201)
    token = await gw.post(f"/api/v1/principals/{principal['id']}/tokens", {}, status=201)
    return str(token["token"])


async def two_apps(gw: Gateway) -> dict[str, str]:
    """demo and payments, one certificate each; returns application slug -> id."""
    await gw.post("/api/v1/applications", {"slug": "payments"}, status=201)
    await gw.post("/api/v1/applications/payments/profiles", {"profile": "tls-server"}, status=201)
    for app in ("demo", "payments"):
        await gw.post(gw.issue_path(app), {"sans": [f"{app}.test"]}, status=201)
    apps = (await gw.get("/api/v1/applications"))["items"]
    return {a["slug"]: a["id"] for a in apps}


async def test_ok_auditor_sees_only_its_application(gateway: Gateway) -> None:
    ids = await two_apps(gateway)
    token = await user(gateway, "aud", "demo")
    events = (await gateway.get("/api/v1/applications/demo/audit", token=token))["items"]
    assert events and {e["application_id"] for e in events} == {ids["demo"]}
    actions = {e["action"] for e in events}
    assert {"certificate.issued", "member.added", "application.created"} <= actions
    # Not the other application's, not the product-wide log.
    denied = await gateway.get("/api/v1/applications/payments/audit", token=token, status=403)
    assert denied["error"]["code"] == "forbidden"
    await gateway.get("/api/v1/audit", token=token, status=403)
    # An app admin is not a Product Admin either.
    boss = await user(gateway, "boss", "demo", role="admin")
    await gateway.get("/api/v1/audit", token=boss, status=403)
    # A Product Member without a role in the application sees none of it.
    outsider = await user(gateway, "outsider")
    await gateway.get("/api/v1/applications/demo/audit", token=outsider, status=403)


async def test_ok_product_admin_filters(gateway: Gateway) -> None:
    ids = await two_apps(gateway)
    everything = await gateway.get("/api/v1/audit?limit=500")
    assert everything["total"] == len(everything["items"]) > 10
    ats = [e["at"] for e in everything["items"]]
    assert ats == sorted(ats, reverse=True), "newest first"

    issued = (await gateway.get("/api/v1/audit?action=certificate.issued"))["items"]
    assert len(issued) == 2 and {e["application_id"] for e in issued} == set(ids.values())
    only_payments = await gateway.get(
        "/api/v1/audit?application=payments&action=certificate.issued"
    )
    assert [e["application_id"] for e in only_payments["items"]] == [ids["payments"]]
    by_actor = (await gateway.get("/api/v1/audit?actor=system"))["items"]
    assert by_actor and {e["actor"] for e in by_actor} == {"system"}
    target = issued[0]["target_id"]
    assert [e["id"] for e in (await gateway.get(f"/api/v1/audit?target_id={target}"))["items"]] == [
        issued[0]["id"]
    ]

    page = await gateway.get("/api/v1/audit?limit=2&offset=1")
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, everything["total"])
    assert [e["id"] for e in page["items"]] == [e["id"] for e in everything["items"][1:3]]

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert (await gateway.get(f"/api/v1/audit?since={future}"))["items"] == []
    assert (await gateway.get(f"/api/v1/audit?until={future}&limit=1"))["total"] == everything[
        "total"
    ]
    app_view = await gateway.get("/api/v1/applications/payments/audit?action=certificate.issued")
    assert app_view["items"] == only_payments["items"]


@pytest.mark.parametrize(
    "query, status, code",
    [
        ("since=yesterday", 400, "invalid_input"),
        ("until=2025-01-01T00:00:00", 400, "invalid_input"),
        ("limit=0", 400, "invalid_input"),
        ("offset=-1", 400, "invalid_input"),
        ("application=ghost", 404, "not_found"),
    ],
    ids=["fail/since", "fail/naive-until", "fail/limit", "fail/offset", "fail/unknown-app"],
)
async def test_fail_bad_query(gateway: Gateway, query: str, status: int, code: str) -> None:
    error = await gateway.get(f"/api/v1/audit?{query}", status=status)
    assert error["error"]["code"] == code


async def test_ok_no_secret_in_the_audit_log(gateway: Gateway) -> None:
    """Token, member and principal changes are audited with before/after, never a secret."""
    principal = await gateway.post(
        "/api/v1/principals", {"name": "alice", "product_role": "member"}
    )
    made = await gateway.post(f"/api/v1/principals/{principal['id']}/tokens", {"name": "ci"})
    mine = await gateway.post("/api/v1/me/tokens", {"name": "laptop"}, status=201)
    await gateway.post(f"/api/v1/tokens/{made['id']}/revoke", {}, status=200)
    issued = await gateway.post(gateway.issue_path(), {"sans": ["k.test"]}, status=201)
    log = await gateway.get("/api/v1/audit?limit=500")
    dump = json.dumps(log)
    for plaintext in (gateway.bootstrap["admin_token"], made["token"], mine["token"]):
        assert secret_of(plaintext) not in dump
    assert "scrypt$" not in dump
    key_body = "".join(issued["private_key_pem"].splitlines()[1:-1])
    assert key_body[:40] not in dump
    actions = [e["action"] for e in log["items"]]
    assert actions.count("token.created") >= 3 and "token.revoked" in actions
    revoked = next(e for e in log["items"] if e["action"] == "token.revoked")
    assert revoked["details"] == {"principal_id": principal["id"], "name": "ci"}
    assert revoked["actor"] == "principal:admin"


# --- certgate audit list -----------------------------------------------------------------

LINE = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)\s+([^\s:]+):(\S+)\s+(\S+)$")


def _cli(gw: Gateway, tmp_path: Path, *args: str, exit_code: int = 0) -> str:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    env = {
        "CERTGATE_HOME": str(gw.config.home),
        "CERTGATE_DATABASE__URL": gw.config.database_url,
        "CERTGATE_TLS__ENABLED": "false",
    }
    result = CliRunner().invoke(
        main, ["--config", str(empty), "audit", "list", *args], env=env, prog_name="certgate"
    )
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result.output


async def cli(gw: Gateway, tmp_path: Path, *args: str) -> list[tuple[str, ...]]:
    # The command runs its own event loop (asyncio.run), so not on the test's.
    output = await asyncio.to_thread(_cli, gw, tmp_path, *args)
    rows = []
    for line in output.splitlines():
        match = LINE.match(line)
        assert match, line
        rows.append(match.groups())
    return rows


async def test_ok_cli_audit_list(gateway: Gateway, tmp_path: Path) -> None:
    ids = await two_apps(gateway)
    await user(gateway, "aud", "payments")
    rows = await cli(gateway, tmp_path, "--limit", "500")
    assert len(rows) == (await gateway.get("/api/v1/audit?limit=1"))["total"]
    payments = await cli(gateway, tmp_path, "--app", "payments")
    assert {r[5] for r in payments} == {"payments"}
    assert {r[2] for r in payments} >= {"certificate.issued", "member.added"}
    added = await cli(gateway, tmp_path, "--action", "member.added", "--actor", "principal:admin")
    assert [(r[1], r[2], r[3], r[5]) for r in added] == [
        ("principal:admin", "member.added", "member", "payments")
    ]
    assert added[0][4].startswith(ids["payments"])
    assert len(await cli(gateway, tmp_path, "--limit", "2")) == 2

    as_json = json.loads(
        await asyncio.to_thread(_cli, gateway, tmp_path, "--action", "member.added", "--json")
    )
    assert as_json[0]["details"]["after"] == {"role": "auditor"}
    assert as_json[0]["application"] == "payments"

    error = await asyncio.to_thread(_cli, gateway, tmp_path, "--app", "ghost", exit_code=1)
    assert error == "Error: application 'ghost' not found [not_found]\n"
