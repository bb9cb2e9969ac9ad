"""Principals (users, machine identities) and their API tokens."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway.admin.audit import event
from gateway.api import serializers as ser
from gateway.api.common import actor, json_body, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.auth import create_principal, create_token
from gateway.core.errors import InvalidInput, NotFound
from gateway.core.model import PrincipalKind, ProductRole


async def list_principals(request: web.Request) -> web.Response:
    async with services(request).db.transaction(read_only=True) as tx:
        items = await tx.principals.list()
    return web.json_response({"items": [ser.principal(p) for p in items]})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        kind = PrincipalKind(body.get("kind", "user"))
        role = ProductRole(body["product_role"]) if body.get("product_role") else None
    except ValueError:
        raise InvalidInput("kind must be user|machine and product_role admin|member") from None
    svc = services(request)
    async with svc.db.transaction() as tx:
        principal = await create_principal(
            tx, actor(request), svc.clock.now(), body.get("name", ""), kind=kind, product_role=role
        )
    return web.json_response(ser.principal(principal), status=201)


async def new_token(request: web.Request) -> web.Response:
    body = await json_body(request)
    expires_at = None
    if body.get("expires_at") is not None:
        try:
            expires_at = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("expires_at must be an ISO 8601 date-time") from None
        if expires_at.tzinfo is None:
            raise InvalidInput("expires_at must include a timezone (e.g. Z)")
    name = body.get("name", "api")
    if not isinstance(name, str) or not name:
        raise InvalidInput("name must be a non-empty string")
    svc = services(request)
    async with svc.db.transaction() as tx:
        token, plaintext = await create_token(
            tx,
            actor(request),
            svc.clock.now(),
            path_uuid(request, "principal_id"),
            name,
            expires_at,
        )
    return web.json_response(
        {
            "id": str(token.id),
            "name": token.name,
            "token": plaintext,
            "expires_at": ser.ts(token.expires_at),
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def revoke_token(request: web.Request) -> web.Response:
    svc = services(request)
    token_id = path_uuid(request, "token_id")
    async with svc.db.transaction() as tx:
        token = await tx.tokens.revoke(token_id, svc.clock.now())
        if token is None:
            raise NotFound("token not found")
        await tx.audit.add(
            event(actor(request), svc.clock.now(), "token.revoked", "token", token_id)
        )
    return web.json_response({"id": str(token.id), "revoked_at": ser.ts(token.revoked_at)})


def routes() -> list[Route]:
    admin = Permission.PRODUCT_ADMIN
    return [
        Route(
            "GET",
            "/api/v1/principals",
            list_principals,
            "principals.list",
            admin,
            "List principals",
            "principals",
        ),
        Route(
            "POST",
            "/api/v1/principals",
            create,
            "principals.create",
            admin,
            "Create a user or machine identity",
            "principals",
            request_body={"name": "string", "kind": "user|machine", "product_role": "admin|member"},
            responses={201: "Created"},
        ),
        Route(
            "POST",
            "/api/v1/principals/{principal_id}/tokens",
            new_token,
            "tokens.create",
            admin,
            "Create an API token (shown once)",
            "principals",
            request_body={"name": "string", "expires_at": "date-time"},
            responses={201: "Created"},
        ),
        Route(
            "POST",
            "/api/v1/tokens/{token_id}/revoke",
            revoke_token,
            "tokens.revoke",
            admin,
            "Revoke an API token",
            "principals",
        ),
    ]
