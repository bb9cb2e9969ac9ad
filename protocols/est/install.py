"""Mounts EST on the gateway: the RFC 7030 routes on the root application (EST authenticates
devices itself, protocols.est.auth; they do not go through the REST API's middleware)."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import SERVICES
from gateway.events.observe import mount
from gateway.services.graph import Services
from protocols.est.auth import parse_networks
from protocols.est.handlers import EstContext, EstHandlers
from protocols.est.settings import EstGateway


def install(app: web.Application) -> None:
    # The backend is made once per running app (it caches verified passphrases) and found
    # through the app, so nothing here is global.
    made: list[tuple[Services, EstContext]] = []

    def context(request: web.Request) -> EstContext:
        svc = request.app[SERVICES]
        cached = made[0] if made else None
        if cached is None or cached[0] is not svc:
            server = svc.config.server
            ctx = EstContext(
                backend=EstGateway(svc),
                trusted_proxies=parse_networks(server.trusted_proxies),
                proxy_header=server.client_cert_header,
                https_base_url=svc.config.https_base_url if svc.config.tls.enabled else "",
            )
            cached = (svc, ctx)
            made[:] = [cached]
        return cached[1]

    mount(app, EstHandlers(context).routes())
