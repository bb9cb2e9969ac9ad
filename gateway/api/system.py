"""Health, readiness, metrics and the public PKI endpoints (CRL, CA certificates)."""

from __future__ import annotations

import logging

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.api.common import path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.appkeys import CRL
from gateway.pki.urls import CA_CERT_PATH, CRL_PATH

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        await services(request).db.ping()
    except Exception:
        log.warning("readiness check failed", exc_info=True)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=services(request).metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def crl(request: web.Request) -> web.Response:
    """RFC 5280 §4.2.1.13 / RFC 2585 §4: DER CRL as application/pkix-crl over HTTP."""
    record = await request.app[CRL].published(path_uuid(request, "ca_id"))
    return web.Response(
        body=record.der,
        content_type="application/pkix-crl",
        headers={"Cache-Control": "max-age=300"},
    )


async def ca_certificate(request: web.Request) -> web.Response:
    """AIA caIssuers target (RFC 5280 §4.2.2.1): the CA certificate, DER."""
    ca = await request.app[CRL].ca_certificate(path_uuid(request, "ca_id"))
    der = x509.load_pem_x509_certificate(ca.certificate_pem.encode()).public_bytes(Encoding.DER)
    return web.Response(body=der, content_type="application/pkix-cert")


def routes() -> list[Route]:
    public = Permission.PUBLIC
    return [
        Route("GET", "/healthz", healthz, "healthz", public, "Process is up", "meta"),
        Route("GET", "/readyz", readyz, "readyz", public, "Database is reachable", "meta"),
        Route("GET", "/metrics", metrics, "metrics", public, "Prometheus metrics", "meta"),
        Route("GET", CRL_PATH, crl, "pki.crl", public, "CRL of a CA (DER)", "pki"),
        Route(
            "GET",
            CA_CERT_PATH,
            ca_certificate,
            "pki.ca_cert",
            public,
            "CA certificate (DER)",
            "pki",
        ),
    ]
