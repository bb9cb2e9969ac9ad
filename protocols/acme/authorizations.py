"""Authorizations and challenges: RFC 8555 §7.5 (fetch, respond), §7.5.2 (deactivate),
and the background validation that follows a response (§7.5.1, §8.2 retries)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.core import acme as rules
from gateway.core.acme import (
    AcmeUnitOfWork,
    Authorization,
    AuthzStatus,
    Challenge,
    ChallengeStatus,
    ChallengeType,
    OrderStatus,
)
from gateway.core.acme import Problem as StoredProblem
from gateway.core.target import EnrollmentTarget
from protocols.acme import validators
from protocols.acme.messages import (
    AuthorizationResource,
    AuthorizationUpdate,
    ChallengeResource,
    decode,
    identifier_json,
)
from protocols.acme.orders import stored_problem_json
from protocols.acme.problems import malformed, not_found
from protocols.acme.server import AcmeServer, Ctx, iso, json_response, verify_post

log = logging.getLogger("certgate.acme.validation")
# How long a challenge response waits for its validation to end (see challenge()).
ANSWER_WAIT = 0.25


def challenge_json(ctx: Ctx, challenge: Challenge) -> dict[str, Any]:
    resource = ChallengeResource(
        type=challenge.type.value,
        url=ctx.url("chall", challenge_id=str(challenge.id)),
        status=challenge.status.value,
        token=challenge.token,
        validated=iso(challenge.validated),
        error=stored_problem_json(challenge.error),
    )
    out: dict[str, Any] = resource.to_partial_json()
    return out


def authz_json(ctx: Ctx, authz: Authorization, status: AuthzStatus) -> dict[str, Any]:
    resource = AuthorizationResource(
        # §7.1.4: the identifier of a wildcard authorization is the base name.
        identifier=identifier_json(rules.Identifier(authz.identifier.type, authz.identifier.base)),
        status=status.value,
        expires=iso(authz.expires),
        challenges=[challenge_json(ctx, c) for c in authz.challenges],
        wildcard=True if authz.wildcard else None,
    )
    out: dict[str, Any] = resource.to_partial_json()
    return out


async def _owned_authz(
    ctx: Ctx, account_id: uuid.UUID, authz_id: uuid.UUID, *, challenges: bool = True
) -> Authorization:
    authz = await ctx.uow.acme.get_authorization(authz_id, challenges=challenges)
    if authz is None or authz.account_id != account_id:
        raise not_found("authorization")
    return authz


async def authorization(ctx: Ctx) -> web.Response:
    verified = await verify_post(ctx)
    assert verified.account is not None
    authz = await _owned_authz(ctx, verified.account.id, ctx.resource_id("authz_id"))
    status = rules.authorization_status(authz, ctx.server.now())
    if not verified.jws.post_as_get:
        update = decode(AuthorizationUpdate, verified.jws.payload())
        if update.status != AuthzStatus.DEACTIVATED.value:
            raise malformed("an authorization can only be deactivated")
        if not rules.can_deactivate_authorization(status):
            raise malformed(f"a {status.value} authorization cannot be deactivated")
        uow = ctx.uow
        await uow.acme.set_authorization(
            authz.id, AuthzStatus.DEACTIVATED, [AuthzStatus.PENDING, AuthzStatus.VALID]
        )
        await settle_order(uow, authz.order_id, ctx.server.now())
        status = AuthzStatus.DEACTIVATED
    return json_response(ctx, authz_json(ctx, authz, status))


async def challenge(ctx: Ctx) -> web.Response:
    """§7.5.1: a POST with `{}` asks the server to validate; POST-as-GET reads."""
    verified = await verify_post(ctx)
    account = verified.account
    assert account is not None
    found = await ctx.uow.acme.get_challenge(ctx.resource_id("challenge_id"))
    if found is None:
        raise not_found("challenge")
    authz = await _owned_authz(ctx, account.id, found.authorization_id, challenges=False)
    ctx.headers["Link"] = f'<{ctx.url("authz", authz_id=str(authz.id))}>;rel="up"'
    if verified.jws.post_as_get:
        return json_response(ctx, challenge_json(ctx, found))
    if verified.jws.payload():
        raise malformed("a challenge response is the empty object {}")
    status = rules.authorization_status(authz, ctx.server.now())
    if rules.can_respond_to_challenge(status, found.status):
        now = ctx.server.now()
        started = await ctx.uow.acme.set_challenge(
            found.id, ChallengeStatus.PROCESSING, [ChallengeStatus.PENDING], started_at=now
        )
        if started:
            # Committed before the validator starts: it records its verdict by
            # compare-and-set from `processing`, which it must find.
            await ctx.commit()
            found = replace(found, status=ChallengeStatus.PROCESSING, started_at=now)
            key_auth = rules.key_authorization(found.token, account.thumbprint)
            task = ctx.server.spawn(_validate(ctx.server, ctx.target, authz, found, key_auth))
            # §7.5.1 lets the answer show the challenge as it is when answered. A validation
            # that ends within ANSWER_WAIT (the usual case on a private network) is shown
            # ended, so the client's first poll finds the authorization settled; a slower
            # one answers `processing` and goes on in the background (wait never cancels).
            await asyncio.wait({task}, timeout=ANSWER_WAIT)
            if task.done() and not task.cancelled() and task.exception() is None:
                found = task.result() or found
    elif status is not AuthzStatus.PENDING and found.status is ChallengeStatus.PENDING:
        raise malformed(f"the authorization is {status.value}")
    return json_response(ctx, challenge_json(ctx, found))


async def _validate(
    server: AcmeServer,
    target: EnrollmentTarget,
    authz: Authorization,
    challenge: Challenge,
    key_auth: str,
) -> Challenge | None:
    """Bounded retries (§8.2: the server may retry; the client only polls). Returns the
    challenge as recorded (None when nothing was: see record_validation)."""
    settings = server.deps.validation
    delay = settings.retry_delay
    failure: validators.ValidationFailed | None = None
    for attempt in range(1, settings.attempts + 1):
        try:
            await validators.validate(
                challenge.type,
                authz.identifier,
                challenge.token,
                key_auth,
                settings,
                target.methods.acme.effective_networks,
                http=server.http_session() if challenge.type is ChallengeType.HTTP_01 else None,
            )
            failure = None
            break
        except validators.ValidationFailed as err:
            failure = err
            log.info(
                "%s for %s failed (attempt %d): %s",
                challenge.type,
                authz.identifier.value,
                attempt,
                err.detail,
            )
        except Exception as err:
            log.exception("validation of challenge %s crashed", challenge.id)
            failure = validators.ValidationFailed("serverInternal", f"validation error: {err}")
            break
        if attempt < settings.attempts:
            await asyncio.sleep(delay)
            delay *= 2
    try:
        return await record_validation(server, authz, challenge, failure)
    except Exception:
        log.exception("could not record the validation of challenge %s", challenge.id)
        return None


async def record_validation(
    server: AcmeServer,
    authz: Authorization,
    challenge: Challenge,
    failure: validators.ValidationFailed | None,
) -> Challenge | None:
    """Record the verdict; the challenge as recorded, or None when the sweeper already
    ended it as stuck (its verdict stays)."""
    now = server.now()
    async with server.deps.db.transaction() as uow:
        if failure is None:
            ended = replace(challenge, status=ChallengeStatus.VALID, validated=now)
            recorded = await uow.acme.set_challenge(
                challenge.id, ChallengeStatus.VALID, [ChallengeStatus.PROCESSING], validated=now
            )
            if recorded:
                await uow.acme.set_authorization(authz.id, AuthzStatus.VALID, [AuthzStatus.PENDING])
        else:
            error = StoredProblem(failure.kind, failure.detail, authz.identifier)
            ended = replace(challenge, status=ChallengeStatus.INVALID, error=error)
            recorded = await uow.acme.set_challenge(
                challenge.id, ChallengeStatus.INVALID, [ChallengeStatus.PROCESSING], error=error
            )
            if recorded:
                # §7.1.6: a failed challenge makes its authorization invalid.
                await uow.acme.set_authorization(
                    authz.id, AuthzStatus.INVALID, [AuthzStatus.PENDING]
                )
        if not recorded:
            return None
        await settle_order(uow, authz.order_id, now)
    return ended


async def settle_order(uow: AcmeUnitOfWork, order_id: uuid.UUID, now: datetime) -> None:
    """Recompute the order's status from its authorizations (§7.1.6) in the same
    transaction that changed one of them."""
    order = await uow.acme.get_order(order_id)
    if order is None:
        return
    authzs = await uow.acme.authorizations_of(order_id, challenges=False)
    status = rules.order_status(order, [rules.authorization_status(a, now) for a in authzs], now)
    if status is not order.status:
        await uow.acme.set_order(
            order_id, status=status, expected=[OrderStatus.PENDING, OrderStatus.READY]
        )
