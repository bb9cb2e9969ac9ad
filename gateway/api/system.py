"""Health, readiness, metrics and the public PKI endpoints (CRL, CA certificates, OCSP)."""

from __future__ import annotations

import base64
import binascii
import logging

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.api.common import path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.appkeys import CRL
from gateway.pki.urls import CA_CERT_PATH, CRL_PATH, OCSP_GET_PATH, OCSP_PATH
from gateway.services.ocsp import MAX_REQUEST_BYTES, OcspService

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


def _ocsp(request: web.Request) -> OcspService:
    responder = services(request).ocsp
    if responder is None:  # open_services always sets it
        raise RuntimeError("the OCSP responder is not wired")
    return responder


def _ocsp_response(der: bytes) -> web.Response:
    # RFC 6960 §A.1: every answer, an unsuccessful status included, is an OCSPResponse with
    # HTTP 200. No HTTP caching (RFC 5019 §6 would allow it): a revocation must show in the
    # next answer a client fetches.
    return web.Response(
        body=der, content_type="application/ocsp-response", headers={"Cache-Control": "no-store"}
    )


async def ocsp_post(request: web.Request) -> web.Response:
    """RFC 6960 §A.1.1: the DER OCSPRequest as the body (application/ocsp-request)."""
    ca_id = path_uuid(request, "ca_id")
    responder = _ocsp(request)
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        return _ocsp_response(await responder.respond(ca_id, b""))
    # StreamReader.read(n) returns what has arrived, up to n: read until the end or the cap.
    body = bytearray()
    while len(body) <= MAX_REQUEST_BYTES:
        chunk = await request.content.read(MAX_REQUEST_BYTES + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > MAX_REQUEST_BYTES:
        body = bytearray()  # answered malformedRequest, like any request it cannot read
    return _ocsp_response(await responder.respond(ca_id, bytes(body)))


async def ocsp_get(request: web.Request) -> web.Response:
    """RFC 6960 §A.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}.
    aiohttp has already percent-decoded the path; base64url is accepted too."""
    ca_id = path_uuid(request, "ca_id")
    encoded = request.match_info["ocsp_request"].translate(_URLSAFE)
    try:
        der = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        der = b""  # malformedRequest, after the CA checks (unknown CA: 404)
    return _ocsp_response(await _ocsp(request).respond(ca_id, der))


_URLSAFE = str.maketrans("-_", "+/")


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
        Route("POST", OCSP_PATH, ocsp_post, "pki.ocsp", public, "OCSP responder (POST)", "pki"),
        Route(
            "GET", OCSP_GET_PATH, ocsp_get, "pki.ocsp_get", public, "OCSP responder (GET)", "pki"
        ),
    ]
