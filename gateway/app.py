"""create_app(config): the one composition root (DESIGN.md). No globals: every resource
is opened in cleanup_ctx and reached through the typed keys in gateway.appkeys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.admin.bootstrap import bootstrap_if_empty, write_root_ca
from gateway.admin.crl import CrlService
from gateway.admin.services import open_services
from gateway.api import (
    acme_settings,
    applications,
    approvals,
    audit,
    cas,
    certificates,
    est_settings,
    me,
    members,
    openapi,
    policies,
    principals,
    profiles,
    projects,
    scep_settings,
    system,
)
from gateway.api.common import api_middleware
from gateway.api.routing import Route, register
from gateway.appkeys import AUTH, CONFIG, CRL, ROUTES, SERVICES
from gateway.auth import Authenticator
from gateway.config import Config

log = logging.getLogger(__name__)

CRL_REFRESH_SECONDS = 300.0


def all_routes() -> list[Route]:
    return [
        *system.routes(),
        *openapi.routes(),
        *projects.routes(),
        *cas.routes(),
        *policies.routes(),
        *profiles.routes(),
        *applications.routes(),
        *certificates.routes(),
        *principals.routes(),
        *members.routes(),
        *me.routes(),
        *approvals.routes(),
        *audit.routes(),
        *est_settings.routes(),
        *acme_settings.routes(),
        *scep_settings.routes(),
    ]


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    services = await open_services(config)
    app[SERVICES] = services
    app[AUTH] = Authenticator(services.db, services.clock)
    app[CRL] = services.crl
    await bootstrap_if_empty(services)
    await write_root_ca(services)
    yield
    await services.close()


async def _crl_refresher(app: web.Application) -> AsyncIterator[None]:
    """Reissue CRLs before nextUpdate (RFC 5280 §5.1.2.5), even with no revocations."""

    async def loop() -> None:
        while True:
            try:
                await app[CRL].refresh_all()
            except Exception:
                log.exception("CRL refresh failed")
            await asyncio.sleep(CRL_REFRESH_SECONDS)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(config: Config, *, background: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[api_middleware], client_max_size=config.server.max_body_bytes
    )
    app[CONFIG] = config
    app[ROUTES] = {}
    register(app, app[ROUTES], all_routes())
    app.cleanup_ctx.append(_services_ctx)
    est_settings.install(app)  # RFC 7030 endpoints (public; EST authenticates devices)
    acme_settings.install(app)  # RFC 8555 routes + the context binding their dependencies
    if background:
        app.cleanup_ctx.append(_crl_refresher)
    return app


__all__ = ["CrlService", "create_app"]
