"""Certificates of an application: issue, list, get, renew, revoke (DESIGN.md contract)."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import (
    actor,
    body_of,
    json_body,
    page_json,
    path_uuid,
    query_of,
    services,
)
from gateway.api.outputs import PrivateKeyOut
from gateway.api.routing import Permission, Route
from gateway.core.enrollment import Pending
from gateway.core.errors import InvalidInput
from gateway.services import certificates as certs
from gateway.services import key_custody
from store.filters import CertificateListStatus


def _result(result: certs.IssueResult) -> web.Response:
    if isinstance(result.outcome, Pending):
        return web.json_response(
            {"request_id": str(result.outcome.request_id), "status": "pending"},
            status=202,
            headers={"Retry-After": str(result.outcome.retry_after)},
        )
    body: dict[str, Any] = ser.certificate(result.outcome.certificate)
    if result.private_key_pem is not None:
        # Returned with the certificate; kept (encrypted) for …/private-key unless the request
        # said "store_key": false (gateway.services.key_custody).
        body["private_key_pem"] = result.private_key_pem
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})


async def issue(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    target = await certs.resolve(svc, request.match_info["app"], request.match_info["profile"])
    return _result(await certs.issue(svc, target, actor(request), body))


async def list_certificates(request: web.Request) -> web.Response:
    svc = services(request)
    app = await certs.resolve_application(svc, request.match_info["app"])
    query = query_of(request, models.CertificateQuery)
    status = query.status.value if query.status is not None else None
    page = await certs.list_certificates(
        svc,
        app,
        profile=query.profile,
        status=cast(CertificateListStatus | None, status),
        expiring_before=query.expiring_before,
        search=query.q or None,
        limit=query.limit,
        offset=query.offset,
    )
    return web.json_response(
        page_json([ser.certificate(c) for c in page.items], page.total, query.limit, query.offset)
    )


async def get_certificate(request: web.Request) -> web.Response:
    svc = services(request)
    app = await certs.resolve_application(svc, request.match_info["app"])
    cert = await certs.get_certificate(svc, app, path_uuid(request, "cert_id"))
    return web.json_response(ser.certificate(cert))


async def revoke(request: web.Request) -> web.Response:
    body = body_of(request, models.RevokeBody)
    svc = services(request)
    app = await certs.resolve_application(svc, request.match_info["app"])
    cert = await certs.revoke(svc, app, path_uuid(request, "cert_id"), body.reason, actor(request))
    return web.json_response(ser.certificate(cert))


async def renew(request: web.Request) -> web.Response:
    body = await json_body(request)
    svc = services(request)
    app = await certs.resolve_application(svc, request.match_info["app"])
    return _result(await certs.renew(svc, app, path_uuid(request, "cert_id"), actor(request), body))


async def private_key(request: web.Request) -> web.Response:
    """The kept server-generated key. The passphrase travels in a header, never in the
    URL: query strings end up in access logs and proxies' logs."""
    if "passphrase" in request.query:
        raise InvalidInput(
            f"send the passphrase in the {key_custody.PASSPHRASE_HEADER} header, not the URL",
            code="passphrase_in_url",
        )
    svc = services(request)
    app = await certs.resolve_application(svc, request.match_info["app"])
    pem = await key_custody.read_private_key(
        svc,
        app,
        path_uuid(request, "cert_id"),
        actor(request),
        request.headers.get(key_custody.PASSPHRASE_HEADER),
    )
    return web.json_response({"private_key_pem": pem}, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    base = "/api/v1/applications/{app}"
    return [
        Route(
            "POST",
            base + "/profiles/{profile}/certificates",
            issue,
            "certificates.issue",
            Permission.APP_ISSUE,
            "Issue a certificate from a CSR, or with a server-generated key",
            "certificates",
            body=models.IssueBody,
            responses={201: "Issued", 202: "Pending approval"},
        ),
        Route(
            "GET",
            base + "/certificates",
            list_certificates,
            "certificates.list",
            Permission.APP_READ,
            "List and filter an application's certificates",
            "certificates",
            query=models.CertificateQuery,
        ),
        Route(
            "GET",
            base + "/certificates/{cert_id}",
            get_certificate,
            "certificates.get",
            Permission.APP_READ,
            "Get a certificate with its chain",
            "certificates",
        ),
        Route(
            "GET",
            base + "/certificates/{cert_id}/private-key",
            private_key,
            "certificates.private_key",
            Permission.APP_ISSUE,
            "Read the kept server-generated private key (audited; optional "
            "X-Key-Passphrase header encrypts it)",
            "certificates",
            schemas={200: PrivateKeyOut},
        ),
        Route(
            "POST",
            base + "/certificates/{cert_id}/revoke",
            revoke,
            "certificates.revoke",
            Permission.APP_ISSUE,
            "Revoke a certificate with an RFC 5280 reason",
            "certificates",
            body=models.RevokeBody,
        ),
        Route(
            "POST",
            base + "/certificates/{cert_id}/renew",
            renew,
            "certificates.renew",
            Permission.APP_ISSUE,
            "Renew a certificate (same subject and SANs)",
            "certificates",
            body=models.RenewBody,
            responses={201: "Issued", 202: "Pending approval"},
        ),
    ]
