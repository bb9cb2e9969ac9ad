"""The REST API is a sub-application at /api/v1 with its own middleware; the protocols'
routes (ACME, EST, SCEP) on the root app do not pass through it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from gateway.api.common import api_middleware
from gateway.api.routing import API_PREFIX


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
