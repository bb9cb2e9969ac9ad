"""Mounts ACME on the gateway: the RFC 8555 routes on the root application (they do not go
through the REST API's middleware: ACME authenticates every POST with its JWS, RFC 8555
§6.2) and the context that binds the front-end's dependencies once the services are open."""

from __future__ import annotations

from aiohttp import web

from gateway.events.observe import mount
from protocols.acme.routes import route_specs
from protocols.acme.server import AcmeServer
from protocols.acme.settings import binder


def install(app: web.Application) -> None:
    server = AcmeServer()
    mount(app, route_specs(server))
    app.cleanup_ctx.append(binder(server))
