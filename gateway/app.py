"""create_app(config): the one composition root (DESIGN.md). No globals: every resource
is opened in cleanup_ctx and reached through the typed keys in gateway.appkeys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from gateway import cli
from gateway.api import (
    acme_settings,
    alerts,
    applications,
    approvals,
    audit,
    cas,
    certificates,
    est_settings,
    export,
    inventory,
    legacy_approvals,
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
from gateway.api.common import api_middleware, standalone
from gateway.api.routing import API_PREFIX, ROUTES, Route, register
from gateway.appkeys import AUTH, CONFIG, CRL, SERVICES
from gateway.bootstrap import bootstrap_if_empty, write_root_ca
from gateway.config import Config
from gateway.listeners import BoundedTCPSite, ListenerLimits, make_runner
from gateway.services.auth import Authenticator
from gateway.services.crl import CrlService
from gateway.services.graph import open_services
from gateway.services.tls import server_ssl_context
from protocols.acme.install import install as acme_install
from protocols.est.install import install as est_install
from protocols.scep.install import install as scep_install

log = logging.getLogger(__name__)

CRL_REFRESH_SECONDS = 300.0


def all_routes() -> list[Route]:
    return [
        *system.routes(),
        *openapi.routes(),
        *projects.routes(),
        *export.routes(),
        *cas.routes(),
        *policies.routes(),
        *profiles.routes(),
        *applications.routes(),
        *certificates.routes(),
        *inventory.routes(),
        *principals.routes(),
        *members.routes(),
        *me.routes(),
        *approvals.routes(),
        *legacy_approvals.routes(),
        *alerts.routes(),
        *audit.routes(),
        *est_settings.routes(),
        *acme_settings.routes(),
        *scep_settings.routes(),
    ]


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    services = await open_services(config)
    app[SERVICES] = services
    app[AUTH] = Authenticator(services.db, services.clock, services.verifier)
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


async def _alert_workers(app: web.Application) -> AsyncIterator[None]:
    """Every process delivers alerts and takes its turn at expiry scans (gateway.events)."""
    services = app[SERVICES]
    dispatcher = services.dispatcher if services.config.events.delivery_enabled else None
    tasks = [
        asyncio.create_task(worker.run_forever())
        for worker in (dispatcher, services.scanner)
        if worker is not None
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(config: Config, *, background: bool = True) -> web.Application:
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    # The REST API: a sub-application at /api/v1 with its own middleware; the root keeps
    # health, metrics and PKI (wrapped in the same error form) and the protocols' routes.
    api = web.Application(
        middlewares=[api_middleware], client_max_size=config.server.max_body_bytes
    )
    app[ROUTES] = api[ROUTES] = {}
    register(app, app[ROUTES], all_routes(), api=api, wrap=standalone)
    app.add_subapp(API_PREFIX, api)
    app.cleanup_ctx.append(_services_ctx)
    # The protocols' own routes: on the root app, outside the REST API's middleware; each
    # authenticates its clients itself (JWS, EST Basic/TLS, SCEP challenge).
    acme_install(app)
    est_install(app)
    scep_install(app)
    if background:
        app.cleanup_ctx.append(_crl_refresher)
        app.cleanup_ctx.append(_alert_workers)
    return app


async def run(config: Config) -> None:
    """Serve HTTP (and HTTPS with the gateway's own certificate) until SIGINT/SIGTERM."""
    app = create_app(config)
    limits = ListenerLimits.from_config(config.server)
    runner = make_runner(app, limits)
    await runner.setup()
    log = logging.getLogger("certgate")
    try:
        # HTTPS first: once /readyz answers on HTTP, every listener is up (a deployment
        # script, or a test, may go straight to the HTTPS URL of bootstrap.json).
        if config.tls.enabled:
            context = await server_ssl_context(app[SERVICES])
            tls_site = BoundedTCPSite(
                runner, config.server.host, config.server.https_port, limits, ssl_context=context
            )
            await tls_site.start()
            log.info("HTTPS listening on %s:%d", config.server.host, config.server.https_port)
        site = BoundedTCPSite(runner, config.server.host, config.server.http_port, limits)
        await site.start()
        log.info("HTTP listening on %s:%d", config.server.host, config.server.http_port)
        log.info("root CA certificate: %s", (config.home / "root-ca.pem").resolve())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """The `certgate` console script: the CLI with this root's server runner."""
    cli.main(obj={"run_server": run})


__all__ = ["CrlService", "create_app", "main", "run"]


if __name__ == "__main__":  # pragma: no cover
    main()
