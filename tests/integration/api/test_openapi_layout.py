"""The REST API's layout: a sub-application at /api/v1 with its own middleware, which the
protocols' routes (ACME, EST, SCEP) on the root app do not pass through; every REST route
documented in the OpenAPI document and declaring a permission; unknown paths a JSON 404."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.api.common import api_middleware
from gateway.api.routing import API_PREFIX, ROUTES, Permission


async def test_ok_rest_is_a_sub_application(gateway: Any) -> None:
    root: web.Application = gateway.client.server.app
    assert api_middleware not in root.middlewares
    mounts = [r for r in root.router.resources() if isinstance(r, web.PrefixedSubAppResource)]
    assert [m.canonical for m in mounts] == [API_PREFIX]
    resp = await gateway.client.get("/api/v1/me", headers=gateway.auth)
    assert resp.status == 200
    assert resp.headers["X-Request-Id"]  # set by the REST middleware


async def test_ok_protocol_routes_skip_rest_middleware(gateway: Any) -> None:
    directory = urlsplit(gateway.bootstrap["acme_directory"]).path
    resp = await gateway.client.get(directory, headers={"X-Request-Id": "from-client"})
    assert resp.status == 200
    # Observed like every request (gateway.events.observe): the client's id is echoed and
    # the route is counted under its name...
    assert resp.headers["X-Request-Id"] == "from-client"
    metrics = (await (await gateway.client.get("/metrics")).read()).decode()
    assert 'route="acme.app.directory",status="200"' in metrics
    # ...but never handled by the REST middleware: a miss is ACME's problem document, not
    # the REST JSON error, and no REST token is asked for.
    missing = directory.replace("/demo/", "/no-such-app/")
    resp = await gateway.client.get(missing)
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert "error" not in await resp.json()


async def test_ok_unknown_rest_path_gets_the_rest_error_form(gateway: Any) -> None:
    resp = await gateway.client.post("/api/v1/no/such/thing", headers=gateway.auth)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


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


async def test_ok_unknown_api_path_is_json_404(gateway) -> None:
    resp = await gateway.client.get("/api/v1/nothing-here", headers=gateway.auth)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
