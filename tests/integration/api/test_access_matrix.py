"""Role x route: EVERY route of app[ROUTES] x every kind of caller, with the exact status.

Each route needs an entry in SAMPLES: the permission this test expects it to declare, its
success status, and a builder for a request that succeeds when the caller may make it
(resources it consumes, like a certificate to revoke, are made fresh per case). A route
without an entry fails test_every_route_has_a_sample (its cases are skipped, so the report
is one list rather than ten failures per route): a new route cannot ship without someone
deciding who may call it. Expectations come from the ALLOWED table below, not from
gateway.api.routing, so a wrong declaration or a wrong check fails.

One gateway per database backend (module-scoped, see access_world) keeps it fast.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gateway.api.routing import ROUTES, Permission, Route
from gateway.app import create_app
from gateway.core.model import KeyType
from gateway.pki.ca import certificate_to_pem, create_root_ca
from gateway.pki.keys import private_key_to_pem
from tests.helpers.databases import DatabaseTemplates
from tests.integration.api.access_world import (
    CALLERS,
    UNAUTHENTICATED,
    Call,
    World,
    backends,
    open_world,
)
from tests.integration.api.alerts_world import alert_samples
from tests.integration.api.conftest import make_config
from tests.integration.api.legacy_world import legacy_samples

pytestmark = pytest.mark.asyncio(loop_scope="module")

AUTHENTICATED = frozenset(CALLERS) - frozenset(UNAUTHENTICATED)
UNAUTHORIZED_CODES = {
    "no_token": "unauthorized",
    "bad_token": "unauthorized",
    "revoked_token": "token_revoked",
    "expired_token": "token_expired",
}

# Who meets each permission (DESIGN.md roles), written out independently of the code.
ALLOWED: dict[Permission, frozenset[str]] = {
    Permission.PUBLIC: frozenset(CALLERS),
    Permission.AUTHENTICATED: AUTHENTICATED,
    Permission.PRODUCT_ADMIN: frozenset({"product_admin"}),
    Permission.APP_READ: frozenset({"auditor", "operator", "app_admin", "product_admin"}),
    Permission.APP_ISSUE: frozenset({"operator", "app_admin", "product_admin"}),
    Permission.APP_ADMIN: frozenset({"app_admin", "product_admin"}),
}


def expected_status(permission: Permission, caller: str, success: int) -> int:
    if permission is not Permission.PUBLIC and caller in UNAUTHENTICATED:
        return 401
    return success if caller in ALLOWED[permission] else 403


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=backends())
async def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    database_templates: DatabaseTemplates,
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp(f"matrix-{request.param}")
    async with open_world(request.param, tmp, database_templates) as w:
        yield w


# --- one sample request per route ----------------------------------------------------------

Build = Callable[[World, str], Awaitable[Call]]


@dataclass(frozen=True)
class Sample:
    permission: Permission  # what the route must declare
    status: int  # its success status
    build: Build


def fixed(call: Call | None = None) -> Build:
    async def build(w: World, caller: str) -> Call:
        return call or Call()

    return build


def at(make: Callable[[World], Call]) -> Build:
    """A request built from the world without setup (unique names, shared ids)."""

    async def build(w: World, caller: str) -> Call:
        return make(w)

    return build


DEMO = {"app": "demo"}
DEMO_PROFILE = {"app": "demo", "profile": "tls-server"}


async def _ca(w: World, caller: str) -> Call:
    return Call({"ca_id": w.root_ca_id})


async def _import_ca(w: World, caller: str) -> Call:
    cert, key = create_root_ca(w.unique("imported"), KeyType.EC_P256, 30)
    body = {
        "name": w.unique("imported"),
        "certificate_pem": certificate_to_pem(cert),
        "private_key_pem": private_key_to_pem(key, None),
    }
    return Call(body=body)


async def _disable_ca(w: World, caller: str) -> Call:
    return Call({"ca_id": await w.ca()})


async def _enable_ca(w: World, caller: str) -> Call:
    ca_id = await w.ca()
    await w.admin("POST", f"/api/v1/cas/{ca_id}/disable", status=200)
    return Call({"ca_id": ca_id})


async def _update_policy(w: World, caller: str) -> Call:
    policy = await w.admin("POST", "/api/v1/policies", {"name": w.unique("pol"), "rules": {}})
    return Call({"policy_id": policy["id"]}, {"rules": {}})


async def _attach(w: World, caller: str) -> Call:
    return Call(DEMO, {"profile": (await w.profile())["slug"]})


def _cert_call(body: dict[str, Any]) -> Build:
    async def build(w: World, caller: str) -> Call:
        return Call({**DEMO, "cert_id": await w.certificate()}, body)

    return build


async def _principal_call(w: World, caller: str) -> Call:
    return Call({"principal_id": (await w.principal())["id"]})


async def _new_token(w: World, caller: str) -> Call:
    return Call({"principal_id": (await w.principal())["id"]}, {"name": "made"})


async def _disable_principal(w: World, caller: str) -> Call:
    return Call({"principal_id": (await w.principal())["id"]}, {"disabled": True})


async def _revoke_token(w: World, caller: str) -> Call:
    principal = await w.principal()
    return Call({"token_id": (await w.token(principal["id"]))["id"]})


async def _add_member(w: World, caller: str) -> Call:
    # By id: an application Admin cannot look principals up by name (finding 9).
    return Call(DEMO, {"principal": (await w.principal())["id"], "role": "auditor"})


async def _change_member(w: World, caller: str) -> Call:
    member = await w.member("auditor")
    return Call({**DEMO, "principal_id": member["id"]}, {"role": "operator"})


async def _remove_member(w: World, caller: str) -> Call:
    return Call({**DEMO, "principal_id": (await w.member())["id"]})


async def _revoke_own_token(w: World, caller: str) -> Call:
    principal_id = w.principal_ids.get(caller)
    if principal_id is None:  # no principal behind the caller: any id, 401 comes first
        return Call({"token_id": str(uuid.uuid4())})
    return Call({"token_id": (await w.token(principal_id))["id"]})


async def _put_policy(w: World, caller: str) -> Call:
    body = {"steps": [{"approvers": [w.principal_ids["product_admin"]]}]}
    return Call({"app": "demo", "profile": await w.attached_profile()}, body)


async def _delete_policy(w: World, caller: str) -> Call:
    call = await _put_policy(w, caller)
    path = "/api/v1/applications/demo/profiles/{profile}/approval-policy"
    await w.admin("PUT", path.format(**call.params), call.body)
    return Call(call.params)


def _decide(body: dict[str, Any]) -> Build:
    async def build(w: World, caller: str) -> Call:
        return Call({**DEMO, "request_id": await w.pending_request()}, body)

    return build


async def _cancel_own(w: World, caller: str) -> Call:
    principal_id = w.principal_ids.get(caller)
    if principal_id is None:  # 401 before anything: any request will do
        request_id = await w.pending_request()
    else:
        request_id = await w.own_request(principal_id, caller)
    return Call({**DEMO, "request_id": request_id}, {"comment": "not needed"})


async def _member_principal(w: World, caller: str) -> Call:
    return Call({"principal_id": w.principal_ids["auditor"]})


async def _export_dry_run(w: World, caller: str) -> Call:
    # A dry run writes nothing, so every caller's request can export the same kind of project.
    project = await w.admin("POST", "/api/v1/projects", {"name": w.unique("legacy")})
    return Call({"project_id": project["id"]}, {"dry_run": True})


A = Permission
SAMPLES: dict[str, Sample] = {
    # meta and public PKI
    "healthz": Sample(A.PUBLIC, 200, fixed()),
    "readyz": Sample(A.PUBLIC, 200, fixed()),
    "metrics": Sample(A.PUBLIC, 200, fixed()),
    "openapi": Sample(A.PUBLIC, 200, fixed()),
    "pki.crl": Sample(A.PUBLIC, 200, _ca),
    "pki.ca_cert": Sample(A.PUBLIC, 200, _ca),
    # An OCSP answer is HTTP 200 whatever it says (here malformedRequest: the JSON body).
    "pki.ocsp": Sample(A.PUBLIC, 200, _ca),
    "pki.ocsp_get": Sample(
        A.PUBLIC, 200, at(lambda w: Call({"ca_id": w.root_ca_id, "ocsp_request": "MAA="}))
    ),
    # product administration
    "projects.list": Sample(A.PRODUCT_ADMIN, 200, fixed()),
    "projects.create": Sample(
        A.PRODUCT_ADMIN, 201, at(lambda w: Call(body={"name": w.unique("proj")}))
    ),
    "projects.activate": Sample(
        A.PRODUCT_ADMIN, 200, at(lambda w: Call({"project_id": w.project_id}))
    ),
    "projects.export": Sample(A.PRODUCT_ADMIN, 200, _export_dry_run),
    "cas.list": Sample(A.PRODUCT_ADMIN, 200, fixed()),
    "cas.create": Sample(
        A.PRODUCT_ADMIN,
        201,
        at(lambda w: Call(body={"name": w.unique("ca"), "key_type": "ec-p256"})),
    ),
    "cas.import_ca": Sample(A.PRODUCT_ADMIN, 201, _import_ca),
    "cas.get": Sample(A.PRODUCT_ADMIN, 200, _ca),
    "cas.disable": Sample(A.PRODUCT_ADMIN, 200, _disable_ca),
    "cas.enable": Sample(A.PRODUCT_ADMIN, 200, _enable_ca),
    "policies.list": Sample(A.PRODUCT_ADMIN, 200, fixed()),
    "policies.create": Sample(
        A.PRODUCT_ADMIN, 201, at(lambda w: Call(body={"name": w.unique("pol"), "rules": {}}))
    ),
    "policies.get": Sample(A.PRODUCT_ADMIN, 200, at(lambda w: Call({"policy_id": w.policy_id}))),
    "policies.update": Sample(A.PRODUCT_ADMIN, 200, _update_policy),
    "profiles.list": Sample(A.PRODUCT_ADMIN, 200, fixed()),
    "profiles.create": Sample(
        A.PRODUCT_ADMIN,
        201,
        at(
            lambda w: Call(
                body={
                    "slug": w.unique("prof"),
                    "ca_id": w.intermediate_id,
                    "policy_id": w.policy_id,
                    "extended_key_usages": ["server_auth"],
                }
            )
        ),
    ),
    "profiles.get": Sample(A.PRODUCT_ADMIN, 200, at(lambda w: Call({"profile_id": w.profile_id}))),
    "profiles.update": Sample(
        A.PRODUCT_ADMIN,
        200,
        at(lambda w: Call({"profile_id": w.profile_id}, {"renew_before_days": 30})),
    ),
    # applications
    "applications.list": Sample(A.AUTHENTICATED, 200, fixed()),
    "applications.create": Sample(
        A.PRODUCT_ADMIN, 201, at(lambda w: Call(body={"slug": w.unique("app")}))
    ),
    "applications.get": Sample(A.APP_READ, 200, fixed(Call(DEMO))),
    "attachments.list": Sample(A.APP_READ, 200, fixed(Call(DEMO))),
    "attachments.create": Sample(A.PRODUCT_ADMIN, 201, _attach),
    "attachments.update": Sample(
        A.APP_ADMIN, 200, fixed(Call(DEMO_PROFILE, {"methods": {"api": {"enabled": True}}}))
    ),
    # certificates
    "certificates.issue": Sample(
        A.APP_ISSUE,
        201,
        at(lambda w: Call(DEMO_PROFILE, {"sans": [w.unique("issue") + ".test"]})),
    ),
    "certificates.list": Sample(A.APP_READ, 200, fixed(Call(DEMO))),
    "certificates.inventory": Sample(A.PRODUCT_ADMIN, 200, fixed()),
    "certificates.get": Sample(
        A.APP_READ, 200, at(lambda w: Call({**DEMO, "cert_id": w.certificate_id}))
    ),
    "certificates.private_key": Sample(
        A.APP_ISSUE, 200, at(lambda w: Call({**DEMO, "cert_id": w.certificate_id}))
    ),
    "certificates.revoke": Sample(A.APP_ISSUE, 200, _cert_call({"reason": "superseded"})),
    "certificates.renew": Sample(A.APP_ISSUE, 201, _cert_call({})),
    # principals and tokens
    "principals.list": Sample(A.PRODUCT_ADMIN, 200, fixed()),
    "principals.create": Sample(
        A.PRODUCT_ADMIN, 201, at(lambda w: Call(body={"name": w.unique("new")}))
    ),
    "principals.get": Sample(A.PRODUCT_ADMIN, 200, _member_principal),
    "principals.update": Sample(A.PRODUCT_ADMIN, 200, _disable_principal),
    "principals.delete": Sample(A.PRODUCT_ADMIN, 204, _principal_call),
    "tokens.list": Sample(A.PRODUCT_ADMIN, 200, _member_principal),
    "tokens.create": Sample(A.PRODUCT_ADMIN, 201, _new_token),
    "tokens.revoke": Sample(A.PRODUCT_ADMIN, 200, _revoke_token),
    # members
    "members.list": Sample(A.APP_READ, 200, fixed(Call(DEMO))),
    "members.add": Sample(A.APP_ADMIN, 201, _add_member),
    "members.update": Sample(A.APP_ADMIN, 200, _change_member),
    "members.remove": Sample(A.APP_ADMIN, 204, _remove_member),
    # the caller itself
    "me.get": Sample(A.AUTHENTICATED, 200, fixed()),
    "me.tokens.list": Sample(A.AUTHENTICATED, 200, fixed()),
    "me.tokens.create": Sample(A.AUTHENTICATED, 201, fixed(Call(body={"name": "mine"}))),
    "me.tokens.revoke": Sample(A.AUTHENTICATED, 200, _revoke_own_token),
    # approval policies and requests
    "approval_policies.get": Sample(
        A.APP_READ, 200, at(lambda w: Call({"app": "demo", "profile": w.gated}))
    ),
    "approval_policies.put": Sample(A.APP_ADMIN, 201, _put_policy),
    "approval_policies.delete": Sample(A.APP_ADMIN, 200, _delete_policy),
    "requests.list": Sample(A.APP_READ, 200, fixed(Call(DEMO))),
    "requests.get": Sample(
        A.APP_READ, 200, at(lambda w: Call({**DEMO, "request_id": w.request_id}))
    ),
    "requests.approve": Sample(A.APP_ISSUE, 200, _decide({"comment": "fine"})),
    "requests.reject": Sample(A.APP_ISSUE, 200, _decide({"comment": "no"})),
    # Cancelling is the requester's own act, but still inside the application: a requester
    # who lost every role there (or Product Member) cannot reach it any more.
    "requests.cancel": Sample(A.APP_READ, 200, _cancel_own),
    # protocol enrollment settings (the wire endpoints authenticate devices themselves)
    "acme_settings.get": Sample(A.APP_ADMIN, 200, fixed(Call(DEMO_PROFILE))),
    "acme_settings.update": Sample(A.APP_ADMIN, 200, fixed(Call(DEMO_PROFILE, {"enabled": True}))),
    "acme_settings.eab": Sample(A.APP_ADMIN, 201, fixed(Call(DEMO_PROFILE, {}))),
    "est.settings.get": Sample(A.APP_READ, 200, fixed(Call(DEMO_PROFILE))),
    "est.settings.update": Sample(A.APP_ADMIN, 200, fixed(Call(DEMO_PROFILE, {"enabled": True}))),
    "est.password.set": Sample(A.APP_ADMIN, 201, fixed(Call(DEMO_PROFILE, {}))),
    "est.profile_settings.get": Sample(
        A.PRODUCT_ADMIN, 200, at(lambda w: Call({"profile_id": w.profile_id}))
    ),
    "est.profile_settings.update": Sample(
        A.PRODUCT_ADMIN, 200, at(lambda w: Call({"profile_id": w.profile_id}, {"enabled": True}))
    ),
    "est.profile_password.set": Sample(
        A.PRODUCT_ADMIN, 201, at(lambda w: Call({"profile_id": w.profile_id}, {}))
    ),
    "scep.settings.get": Sample(A.APP_READ, 200, fixed(Call(DEMO_PROFILE))),
    "scep.settings.update": Sample(A.APP_ADMIN, 200, fixed(Call(DEMO_PROFILE, {"enabled": True}))),
    "scep.challenge.set": Sample(A.APP_ADMIN, 201, fixed(Call(DEMO_PROFILE, {}))),
    "scep.ra.rotate": Sample(A.APP_ADMIN, 201, fixed(Call(DEMO_PROFILE, {}))),
    "scep.challenges.create": Sample(A.APP_ISSUE, 201, fixed(Call(DEMO_PROFILE, {}))),
    **{
        f"scep.profile.{name}": Sample(
            A.PRODUCT_ADMIN, status, at(lambda w, b=body: Call({"profile_id": w.profile_id}, b))
        )
        for name, status, body in (
            ("settings.get", 200, None),
            ("settings.update", 200, {"enabled": True}),
            ("challenge.set", 201, {}),
            ("ra.rotate", 201, {}),
            ("challenges.create", 201, {}),
        )
    },
    # audit log
    "audit.list": Sample(A.PRODUCT_ADMIN, 200, fixed(Call(query={"limit": "5"}))),
    "audit.application": Sample(A.APP_READ, 200, fixed(Call(DEMO, query={"limit": "5"}))),
}
# A legacy project's approval policies and requests (tests/integration/api/legacy_world.py).
SAMPLES.update(legacy_samples(lambda status, build: Sample(A.PRODUCT_ADMIN, status, build)))
# Alerts of an application and of a legacy project (tests/integration/api/alerts_world.py).
SAMPLES.update(alert_samples(Sample, (A.APP_READ, A.APP_ADMIN), A.PRODUCT_ADMIN))


# --- the tests -----------------------------------------------------------------------------


def _route_names() -> list[str]:
    """The table as create_app builds it (routes added outside all_routes() included);
    building an app opens nothing, so this is safe at collection time."""
    config = make_config(Path("/nonexistent-certgate-home"), "sqlite+aiosqlite:///:memory:")
    table = create_app(config, background=False)[ROUTES]
    return sorted(name for name, route in table.items() if not is_protocol_wire(route))


def is_protocol_wire(route: Route) -> bool:
    """ACME, EST and SCEP wire endpoints authenticate devices by their own protocol (JWS +
    EAB, Basic/client certificate, challenge/certificate), not by bearer token; their access
    rules are tested in tests/integration/{acme,est,scep}. Everything else is walked here."""
    return (
        route.permission is Permission.PUBLIC
        and route.tag in PROTOCOL_TAGS
        and not route.path.startswith("/api/")
    )


PROTOCOL_TAGS = frozenset({"acme", "est", "scep"})


ROUTE_NAMES = _route_names()


async def test_every_route_has_a_sample() -> None:
    """Fails with the full list, so whoever adds routes sees every one to declare."""
    missing = sorted(set(ROUTE_NAMES) - set(SAMPLES))
    stale = sorted(set(SAMPLES) - set(ROUTE_NAMES))
    assert not missing, f"routes without a sample request in {__name__}.SAMPLES: {missing}"
    assert not stale, f"samples for routes that no longer exist: {stale}"


async def test_matrix_walks_the_live_route_table(world: World) -> None:
    # The parametrization comes from a second app built at collection; same table.
    live = sorted(n for n, r in world.app[ROUTES].items() if not is_protocol_wire(r))
    assert live == ROUTE_NAMES


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route_name", ROUTE_NAMES)
async def test_access(world: World, route_name: str, caller: str) -> None:
    route: Route = world.app[ROUTES][route_name]
    sample = SAMPLES.get(route_name)
    if sample is None:
        # test_every_route_has_a_sample fails for it, once, with the full list.
        pytest.skip(f"route {route_name} ({route.method} {route.path}) has no sample request")
    assert route.permission is sample.permission, (
        f"{route_name} declares {route.permission.value}, the matrix expects "
        f"{sample.permission.value}"
    )
    call = await sample.build(world, caller)
    url = world.app.router[route_name].url_for(**call.params).with_query(call.query)
    token = world.tokens[caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await world.client.request(route.method, str(url), json=call.body, headers=headers)
    body = await resp.read()
    want = expected_status(route.permission, caller, sample.status)
    assert resp.status == want, (
        f"{caller} {route.method} {url}: got {resp.status}, want {want}: {body[:300]!r}"
    )
    if want in (401, 403):
        # The one JSON error form, with the stable code clients match on.
        assert (await resp.json())["error"]["code"] == (
            "forbidden" if want == 403 else UNAUTHORIZED_CODES[caller]
        )
    if want == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
