"""Mounts SCEP on the gateway: the RFC 8894 routes on the root application (SCEP
authenticates by challenge or certificate itself; they do not go through the REST API's
middleware)."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import SERVICES
from gateway.events.observe import mount
from gateway.services.graph import Services
from protocols.scep.handlers import ScepHandlers
from protocols.scep.transactions import ScepGateway


def install(app: web.Application) -> None:
    # The backend is made once per running app (it caches the RA) and found through the
    # app, so nothing here is global.
    made: list[tuple[Services, ScepGateway]] = []

    def backend(request: web.Request) -> ScepGateway:
        svc = request.app[SERVICES]
        if not made or made[0][0] is not svc:
            made[:] = [(svc, ScepGateway(svc))]
        return made[0][1]

    mount(app, ScepHandlers(backend).routes())
