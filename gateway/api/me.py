"""The caller's own view: who am I, my memberships, my API tokens. Any authenticated
principal manages its own tokens here, without needing a Product Admin."""

from __future__ import annotations

from aiohttp import web

from gateway.api import models
from gateway.api import serializers as ser
from gateway.api.common import PRINCIPAL, actor, json_body, path_uuid, services
from gateway.api.principals import (
    created_token_response,
    memberships_json,
    token_json,
    token_request,
)
from gateway.api.routing import Permission, Route
from gateway.core.errors import InvalidInput
from gateway.services import principals


async def whoami(request: web.Request) -> web.Response:
    auth = request[PRINCIPAL]
    svc = services(request)
    memberships = await principals.memberships(svc, auth.principal.id)
    return web.json_response(
        {
            "principal": ser.principal(auth.principal),
            "token": token_json(auth.token, svc.clock.now()),
            "memberships": memberships_json(memberships),
        }
    )


async def list_tokens(request: web.Request) -> web.Response:
    svc = services(request)
    tokens = await principals.own_tokens(svc, request[PRINCIPAL].principal.id)
    now = svc.clock.now()
    return web.json_response({"items": [token_json(t, now) for t in tokens]})


async def new_token(request: web.Request) -> web.Response:
    name, expires_at = token_request(await json_body(request))
    auth = request[PRINCIPAL]
    # A token minted with a token never outlives it: otherwise a leaked short-lived token
    # could be turned into a permanent one that survives its revocation's intent.
    limit = auth.token.expires_at
    if limit is not None:
        if expires_at is None:
            expires_at = limit
        elif expires_at > limit:
            raise InvalidInput(
                f"expires_at must not be later than the calling token's ({ser.ts(limit)})"
            )
    # Nor its revocation: the new token is revoked with the calling one.
    token, plaintext = await principals.create_token(
        services(request), actor(request), auth.principal.id, name, expires_at, parent=auth.token.id
    )
    return created_token_response(token, plaintext)


async def revoke(request: web.Request) -> web.Response:
    svc = services(request)
    token = await principals.revoke_token(
        svc, actor(request), path_uuid(request, "token_id"), owner=request[PRINCIPAL].principal.id
    )
    return web.json_response(token_json(token, svc.clock.now()))


def routes() -> list[Route]:
    anyone = Permission.AUTHENTICATED
    return [
        Route(
            "GET",
            "/api/v1/me",
            whoami,
            "me.get",
            anyone,
            "The calling principal, its token and its application memberships",
            "me",
        ),
        Route(
            "GET",
            "/api/v1/me/tokens",
            list_tokens,
            "me.tokens.list",
            anyone,
            "List the caller's API tokens (never their secrets)",
            "me",
        ),
        Route(
            "POST",
            "/api/v1/me/tokens",
            new_token,
            "me.tokens.create",
            anyone,
            "Create an API token for the caller (shown once)",
            "me",
            body=models.TokenBody,
            responses={201: "Created"},
        ),
        Route(
            "POST",
            "/api/v1/me/tokens/{token_id}/revoke",
            revoke,
            "me.tokens.revoke",
            anyone,
            "Revoke one of the caller's API tokens",
            "me",
        ),
    ]
