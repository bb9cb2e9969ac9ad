"""The world the role x route matrix runs in (tests/integration/api/test_access_matrix.py):
one gateway, a principal and token per kind of caller, and shared resources. Callers
holding an application role hold it in the bootstrap's "demo" application."""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from gateway.app import create_app
from gateway.appkeys import SERVICES
from gateway.core.model import CertificateRequest, EnrollmentMethod, RequestState, new_id
from store import tables
from tests.helpers.databases import POSTGRES_URL_ENV, DatabaseTemplates
from tests.helpers.x509util import make_csr
from tests.integration.api.conftest import make_config

# Callers, in the order of the issue. The app-level roles hold them in the demo application
# and all have the Product Member role, except the last app admin, which lacks it.
UNAUTHENTICATED = ("no_token", "bad_token", "revoked_token", "expired_token")
CALLERS = (
    *UNAUTHENTICATED,
    "product_member",
    "auditor",
    "operator",
    "app_admin",
    "app_admin_without_product_role",
    "product_admin",
)
APP_ROLE = {"auditor": "auditor", "operator": "operator", "app_admin": "admin"}


@dataclass
class Call:
    """One request: path parameters for url_for, an optional JSON body and query."""

    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    app: web.Application
    client: TestClient
    admin_token: str
    tokens: dict[str, str | None]  # caller -> bearer token
    principal_ids: dict[str, str]  # authenticated caller -> principal id
    root_ca_id: str
    intermediate_id: str
    policy_id: str
    profile_id: str
    project_id: str
    certificate_id: str
    demo_id: str = ""
    # A profile of demo with a one-step approval policy naming every caller's principal, a
    # requester (an Operator who is none of the callers) and one of its requests.
    gated: str = ""
    gated_id: str = ""
    requester_token: str = ""
    request_id: str = ""
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    async def admin(self, method: str, path: str, body: Any = None, status: int = 201) -> Any:
        """Setup through the API as the Product Admin; the status is checked."""
        resp = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        data = await resp.json() if resp.status != 204 else None
        assert resp.status == status, (method, path, data)
        return data

    async def principal(self, role: str | None = "member") -> dict[str, Any]:
        body = {"name": self.unique("p"), "product_role": role}
        return await self.admin("POST", "/api/v1/principals", body)  # type: ignore[no-any-return]

    async def token(self, principal_id: str) -> dict[str, Any]:
        return await self.admin(  # type: ignore[no-any-return]
            "POST", f"/api/v1/principals/{principal_id}/tokens", {"name": "t"}
        )

    async def member(self, role: str = "auditor") -> dict[str, Any]:
        principal = await self.principal()
        await self.admin(
            "POST",
            "/api/v1/applications/demo/members",
            {"principal": principal["id"], "role": role},
        )
        return principal

    async def certificate(self) -> str:
        issued = await self.admin(
            "POST",
            "/api/v1/applications/demo/profiles/tls-server/certificates",
            {"sans": [self.unique("c") + ".test"]},
        )
        return str(issued["id"])

    async def ca(self) -> str:
        body = {"name": self.unique("ca"), "kind": "root", "key_type": "ec-p256"}
        return str((await self.admin("POST", "/api/v1/cas", body))["id"])

    async def attached_profile(self) -> str:
        slug = str((await self.profile())["slug"])
        await self.admin("POST", "/api/v1/applications/demo/profiles", {"profile": slug})
        return slug

    async def pending_request(self) -> str:
        """A fresh open request on the gated profile, asked for by the requester."""
        resp = await self.client.post(
            f"/api/v1/applications/demo/profiles/{self.gated}/certificates",
            json={"csr": make_csr(self.unique("gated") + ".test")[0]},
            headers={"Authorization": f"Bearer {self.requester_token}"},
        )
        data = await resp.json()
        assert resp.status == 202, data
        return str(data["request_id"])

    async def own_request(self, principal_id: str, name: str) -> str:
        """An open request whose requester is `principal_id`, written to the store directly:
        an Auditor has no way to ask for one, yet may cancel one it made as an Operator."""
        now = datetime.now(UTC)
        request = CertificateRequest(
            id=new_id(),
            application_id=uuid.UUID(self.demo_id),
            profile_id=uuid.UUID(self.gated_id),
            csr_pem=make_csr(self.unique("own") + ".test")[0],
            fingerprint=uuid.uuid4().hex,
            requester=f"principal:{name}",
            requester_id=uuid.UUID(principal_id),
            method=EnrollmentMethod.API,
            state=RequestState.OPEN,
            step=0,
            approvals=(),
            requested_validity_days=None,
            renewed_from=None,
            certificate_id=None,
            comment="",
            created_at=now,
            expires_at=now + timedelta(hours=1),
            updated_at=now,
        )
        async with self.app[SERVICES].db.transaction() as tx:
            await tx.requests.add(request)
        return str(request.id)

    async def profile(self) -> dict[str, Any]:
        return await self.admin(  # type: ignore[no-any-return]
            "POST",
            "/api/v1/profiles",
            {
                "slug": self.unique("prof"),
                "ca_id": self.intermediate_id,
                "policy_id": self.policy_id,
                "key_usages": ["digital_signature", "key_encipherment"],
                "extended_key_usages": ["server_auth"],
            },
        )


def backends() -> list[Any]:
    """sqlite, and postgresql when CERTGATE_TEST_DATABASE_URL is set (as tests/conftest.py)."""
    params: list[Any] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get(POSTGRES_URL_ENV):
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


async def _build_world(app: web.Application, client: TestClient, home: Path) -> World:

    bootstrap = json.loads((home / "bootstrap.json").read_text())
    admin_token = bootstrap["admin_token"]
    headers = {"Authorization": f"Bearer {admin_token}"}

    async def get(path: str) -> Any:
        resp = await client.get(path, headers=headers)
        assert resp.status == 200, path
        return await resp.json()

    cas = (await get("/api/v1/cas"))["items"]
    root = next(c for c in cas if c["kind"] == "root")
    intermediate = next(c for c in cas if c["kind"] == "intermediate")
    profile = await get(f"/api/v1/profiles/{bootstrap['profile_id']}")
    project = next(p for p in (await get("/api/v1/projects"))["items"] if p["status"] == "active")
    world = World(
        app=app,
        client=client,
        admin_token=admin_token,
        tokens={},
        principal_ids={},
        root_ca_id=root["id"],
        intermediate_id=intermediate["id"],
        policy_id=profile["policy_id"],
        profile_id=profile["id"],
        project_id=project["id"],
        certificate_id="",
    )
    world.certificate_id = await world.certificate()
    me = await get("/api/v1/me")
    world.principal_ids["product_admin"] = me["principal"]["id"]
    world.tokens.update(
        no_token=None,
        bad_token=f"cgt_{uuid.uuid4().hex}_not-a-secret",
        product_admin=admin_token,
    )
    # Revoked and expired tokens belong to a Product Admin: a token that would otherwise be
    # allowed everything must still get 401.
    revoked = await world.token(me["principal"]["id"])
    await world.admin("POST", f"/api/v1/tokens/{revoked['id']}/revoke", status=200)
    world.tokens["revoked_token"] = revoked["token"]
    expired = await world.token(me["principal"]["id"])
    async with app[SERVICES].db.transaction() as tx:
        await tx.session.execute(
            update(tables.api_tokens)
            .where(tables.api_tokens.c.id == uuid.UUID(expired["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    world.tokens["expired_token"] = expired["token"]
    for caller in ("product_member", "auditor", "operator", "app_admin"):
        principal = await world.principal("member")
        if caller in APP_ROLE:
            await world.admin(
                "POST",
                "/api/v1/applications/demo/members",
                {"principal": principal["name"], "role": APP_ROLE[caller]},
            )
        world.principal_ids[caller] = principal["id"]
        world.tokens[caller] = (await world.token(principal["id"]))["token"]
    lacking = await world.principal(None)
    await world.admin(
        "POST", "/api/v1/applications/demo/members", {"principal": lacking["id"], "role": "admin"}
    )
    world.principal_ids["app_admin_without_product_role"] = lacking["id"]
    world.tokens["app_admin_without_product_role"] = (await world.token(lacking["id"]))["token"]
    await _gate(world)
    return world


async def _gate(w: World) -> None:
    demo = await w.admin("GET", "/api/v1/applications/demo", status=200)
    w.demo_id = demo["id"]
    w.gated = await w.attached_profile()
    profiles = await w.admin("GET", "/api/v1/profiles", status=200)
    w.gated_id = next(p["id"] for p in profiles["items"] if p["slug"] == w.gated)
    # Every caller that can reach the application (finding 9: approvers are members or
    # Product Admins); the product member is neither.
    approvers = sorted(i for c, i in w.principal_ids.items() if c != "product_member")
    await w.admin(
        "PUT",
        f"/api/v1/applications/demo/profiles/{w.gated}/approval-policy",
        {"steps": [{"approvers": approvers, "required": 1}]},
    )
    requester = await w.member("operator")
    w.requester_token = (await w.token(requester["id"]))["token"]
    w.request_id = await w.pending_request()


@asynccontextmanager
async def open_world(backend: str, tmp: Path, templates: DatabaseTemplates) -> AsyncIterator[World]:
    """A bootstrapped gateway on `backend` (a copy of the run's first start, as the
    `gateway` fixture has) with every caller set up."""
    url = templates.empty(backend, tmp)
    try:
        config = make_config(tmp / "home", url)
        templates.seed(config)
        app = create_app(config, background=False)
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            yield await _build_world(app, client, config.home)
        finally:
            await client.close()
    finally:
        templates.drop(url)
