"""Principals (users, machine identities) and their API tokens, managed by Product Admins.
A principal's own view (who am I, my tokens) is gateway.api.me."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import actor, iso_datetime, json_body, path_uuid, services
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput
from gateway.core.model import ApiToken, PrincipalKind, ProductRole
from gateway.services import principals
from gateway.services.principals import UNSET, Membership


def token_json(token: ApiToken, now: datetime) -> dict[str, Any]:
    """A token without its secret or hash: those are never shown after creation."""
    if token.revoked_at is not None:
        status = "revoked"
    elif token.expires_at is not None and token.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "id": str(token.id),
        "principal_id": str(token.principal_id),
        "name": token.name,
        "status": status,
        "created_at": ser.ts(token.created_at),
        "expires_at": ser.ts(token.expires_at),
        "revoked_at": ser.ts(token.revoked_at),
    }


def memberships_json(memberships: list[Membership]) -> list[dict[str, Any]]:
    return [
        {
            "application_id": str(m.member.application_id),
            "application": m.application.slug if m.application else None,
            "project_id": str(m.application.project_id) if m.application else None,
            "role": m.member.role.value,
            "created_at": ser.ts(m.member.created_at),
        }
        for m in memberships
    ]


def _product_role(value: Any) -> ProductRole | None:
    if value is None:
        return None
    try:
        return ProductRole(value)
    except ValueError:
        raise InvalidInput(
            "product_role must be admin, member or null", code="invalid_role"
        ) from None


async def list_principals(request: web.Request) -> web.Response:
    items = await principals.list_principals(services(request))
    return web.json_response({"items": [ser.principal(p) for p in items]})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    try:
        kind = PrincipalKind(body.get("kind", "user"))
    except ValueError:
        raise InvalidInput("kind must be user or machine") from None
    role = _product_role(body.get("product_role"))
    principal = await principals.create_principal(
        services(request), actor(request), body.get("name", ""), kind=kind, product_role=role
    )
    return web.json_response(ser.principal(principal), status=201)


async def get_principal(request: web.Request) -> web.Response:
    principal, memberships = await principals.get_principal(
        services(request), path_uuid(request, "principal_id")
    )
    return web.json_response(
        {**ser.principal(principal), "memberships": memberships_json(memberships)}
    )


async def update(request: web.Request) -> web.Response:
    body = await json_body(request)
    unknown = set(body) - {"product_role", "disabled"}
    if not body:
        raise InvalidInput("nothing to change: give product_role and/or disabled")
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(sorted(unknown))}; only product_role and disabled"
        )
    disabled = body.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise InvalidInput("disabled must be a boolean")
    role = _product_role(body["product_role"]) if "product_role" in body else UNSET
    principal = await principals.update_principal(
        services(request),
        actor(request),
        path_uuid(request, "principal_id"),
        product_role=role,
        disabled=disabled,
    )
    return web.json_response(ser.principal(principal))


async def delete(request: web.Request) -> web.Response:
    await principals.delete_principal(
        services(request), actor(request), path_uuid(request, "principal_id")
    )
    return web.Response(status=204)


def token_request(body: dict[str, Any]) -> tuple[str, datetime | None]:
    """Name and expiry of a token to create, from a request body."""
    expires_at = iso_datetime(body.get("expires_at"), "expires_at")
    name = body.get("name", "api")
    if not isinstance(name, str) or not name or len(name) > 200:
        raise InvalidInput("name must be a string of 1 to 200 characters")
    return name, expires_at


def created_token_response(token: ApiToken, plaintext: str) -> web.Response:
    return web.json_response(
        {
            "id": str(token.id),
            "principal_id": str(token.principal_id),
            "name": token.name,
            "token": plaintext,  # shown this once; only a hash is stored
            "expires_at": ser.ts(token.expires_at),
        },
        status=201,
        headers={"Cache-Control": "no-store"},
    )


async def new_token(request: web.Request) -> web.Response:
    name, expires_at = token_request(await json_body(request))
    token, plaintext = await principals.create_token(
        services(request), actor(request), path_uuid(request, "principal_id"), name, expires_at
    )
    return created_token_response(token, plaintext)


async def list_tokens(request: web.Request) -> web.Response:
    svc = services(request)
    tokens = await principals.list_tokens(svc, path_uuid(request, "principal_id"))
    now = svc.clock.now()
    return web.json_response({"items": [token_json(t, now) for t in tokens]})


async def revoke(request: web.Request) -> web.Response:
    svc = services(request)
    token = await principals.revoke_token(svc, actor(request), path_uuid(request, "token_id"))
    return web.json_response(token_json(token, svc.clock.now()))


def routes() -> list[Route]:
    admin = Permission.PRODUCT_ADMIN
    one = "/api/v1/principals/{principal_id}"
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
            body=models.PrincipalBody,
            responses={201: "Created"},
        ),
        Route(
            "GET",
            one,
            get_principal,
            "principals.get",
            admin,
            "Get a principal with its application memberships",
            "principals",
        ),
        Route(
            "PATCH",
            one,
            update,
            "principals.update",
            admin,
            "Change a principal's product role (admin, member or null) or disable it",
            "principals",
            body=models.PrincipalUpdateBody,
        ),
        Route(
            "DELETE",
            one,
            delete,
            "principals.delete",
            admin,
            "Delete a principal, its tokens and its memberships",
            "principals",
            responses={204: "Deleted"},
        ),
        Route(
            "GET",
            one + "/tokens",
            list_tokens,
            "tokens.list",
            admin,
            "List a principal's API tokens (never their secrets)",
            "principals",
        ),
        Route(
            "POST",
            one + "/tokens",
            new_token,
            "tokens.create",
            admin,
            "Create an API token (shown once)",
            "principals",
            body=models.TokenBody,
            responses={201: "Created"},
        ),
        Route(
            "POST",
            "/api/v1/tokens/{token_id}/revoke",
            revoke,
            "tokens.revoke",
            admin,
            "Revoke an API token",
            "principals",
        ),
    ]
