"""Directory, newNonce and accounts: RFC 8555 §7.1.1, §7.2, §7.3 (with External Account
Binding, §7.3.4), account update/deactivation (§7.3.2, §7.3.6) and keyChange (§7.3.5)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.core.acme import Account, AccountStatus
from gateway.core.acme import Problem as StoredProblem
from gateway.core.errors import Conflict
from gateway.core.model import new_id
from protocols.acme import jws as jwslib
from protocols.acme.messages import AccountResource, KeyChange, NewAccount, decode
from protocols.acme.problems import Problem, malformed
from protocols.acme.server import Ctx, Verified, json_response, unauthorized_url, verify_post


async def directory(ctx: Ctx) -> web.Response:
    """RFC 8555 §7.1.1, with RFC 9773 §4 renewalInfo.

    `meta` (§7.1.1): termsOfService when the Admin configured one; externalAccountRequired
    always (§7.3.4). No caaIdentities: this private CA does not check CAA (RFC 8659), so
    there are no names for CAA records to authorize. No `profiles` (draft-aaron-acme-profiles,
    directory meta): a directory here serves exactly one certificate profile (application +
    profile, or the legacy profile), so there is nothing to choose between; a client picks
    a profile by picking its directory, and newOrder refuses a `profile` field
    (orders.new_order)."""
    meta: dict[str, Any] = {"externalAccountRequired": ctx.target.methods.acme.eab_required}
    if ctx.target.methods.acme.terms_of_service:
        meta["termsOfService"] = ctx.target.methods.acme.terms_of_service
    body = {
        "newNonce": ctx.url("new-nonce"),
        "newAccount": ctx.url("new-account"),
        "newOrder": ctx.url("new-order"),
        "revokeCert": ctx.url("revoke-cert"),
        "keyChange": ctx.url("key-change"),
        "renewalInfo": ctx.url("renewal-info-base"),
        "meta": meta,
    }
    return json_response(ctx, body)


async def nonce(ctx: Ctx) -> web.Response:
    """RFC 8555 §7.2: HEAD answers 200, GET 204; the wrapper adds Replay-Nonce."""
    ctx.headers["Cache-Control"] = "no-store"
    return web.Response(status=200 if ctx.request.method == "HEAD" else 204)


def account_json(ctx: Ctx, account: Account) -> dict[str, Any]:
    resource = AccountResource(
        status=account.status.value,
        contact=account.contact,
        orders=ctx.url("orders", account_id=str(account.id)),
    )
    out: dict[str, Any] = resource.to_partial_json()
    out["contact"] = list(account.contact)
    return out


def _contacts(values: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 8555 §7.3: mailto: only here; no hfields (§7.3 "unsupportedContact")."""
    for value in values:
        if not value.startswith("mailto:"):
            raise Problem("unsupportedContact", f"only mailto: contacts are supported: {value}")
        if "?" in value or "," in value or "@" not in value:
            raise Problem("invalidContact", f"invalid contact {value}")
    return values


async def new_account(ctx: Ctx) -> web.Response:
    verified = await verify_post(ctx, use_jwk=True)
    if verified.account is not None:
        # §6.2: "For newAccount requests … there MUST be a jwk field."
        raise malformed("newAccount must be signed with a jwk, not a kid (RFC 8555 §6.2)")
    payload = decode(NewAccount, verified.jws.payload())
    thumbprint = jwslib.thumbprint(verified.jwk)
    existing = await ctx.uow.acme.find_account(ctx.target.owner, thumbprint)
    if existing is not None:  # §7.3.1: the key is already registered
        if existing.status is not AccountStatus.VALID:
            raise Problem("unauthorized", f"account is {existing.status.value}")
        location = ctx.url("account", account_id=str(existing.id))
        return json_response(ctx, account_json(ctx, existing), location=location)
    if payload.only_return_existing:
        raise Problem("accountDoesNotExist", "no account exists with this key")
    terms = ctx.target.methods.acme.terms_of_service
    if terms and payload.terms_of_service_agreed is not True:
        # §7.3: agreement is shown by termsOfServiceAgreed: true; the Link is how §7.3.3
        # points a client at the terms it must agree to.
        raise Problem(
            "malformed",
            f"agree to the terms of service at {terms} (termsOfServiceAgreed: true)",
            headers={"Link": f'<{terms}>;rel="terms-of-service"'},
        )
    eab_kid = await _check_eab(ctx, verified, payload.external_account_binding)
    account = Account(
        id=new_id(),
        scope=ctx.target.owner,
        thumbprint=thumbprint,
        jwk=verified.jwk,
        status=AccountStatus.VALID,
        contact=_contacts(payload.contact),
        eab_kid=eab_kid,
        created_at=ctx.server.now(),
    )
    stored = await ctx.uow.acme.add_account(account)
    status = 201 if stored.id == account.id else 200
    location = ctx.url("account", account_id=str(stored.id))
    return json_response(ctx, account_json(ctx, stored), status=status, location=location)


async def _check_eab(ctx: Ctx, verified: Verified, binding: Any) -> str | None:
    """RFC 8555 §7.3.4: a JWS MAC'ed with the EAB key, kid = key id, url = newAccount URL,
    payload = the account's JWK."""
    if binding is None:
        if ctx.target.methods.acme.eab_required:
            raise Problem("externalAccountRequired", "this directory needs externalAccountBinding")
        return None
    inner = jwslib.parse_inner(binding, "externalAccountBinding")
    if "nonce" in inner.protected:
        raise malformed("externalAccountBinding must not carry a nonce")
    if inner.protected.get("url") != ctx.request_url():
        raise malformed("externalAccountBinding url must be the newAccount URL")
    kid = inner.protected.get("kid")
    if not isinstance(kid, str) or not kid:
        raise malformed("externalAccountBinding needs a kid")
    bound = inner.payload()
    if jwslib.thumbprint(bound) != jwslib.thumbprint(verified.jwk):
        raise malformed("externalAccountBinding payload must be the account key")
    key = await ctx.deps.endpoints.eab_key(ctx.target, kid)
    if key is None:
        raise Problem("unauthorized", "unknown externalAccountBinding kid")
    jwslib.verify_mac(inner, key)
    if not ctx.target.methods.acme.eab_reuse:
        # Reached only for a key with no account here yet (new_account answers an existing
        # one first), so any account bound by this kid is another key's.
        if await ctx.uow.acme.account_bound_by(ctx.target.owner, kid) is not None:
            raise Problem(
                "unauthorized",
                "this externalAccountBinding key has already bound an account; ask the "
                "directory's administrator for a new one",
            )
    return kid


async def account(ctx: Ctx) -> web.Response:
    """RFC 8555 §7.3.2 update, §7.3.6 deactivation, POST-as-GET (§7.3.3)."""
    verified = await verify_post(ctx)
    current = verified.account
    assert current is not None
    if ctx.resource_id("account_id") != current.id:
        raise Problem("unauthorized", "the kid does not own this account")
    if verified.jws.post_as_get:
        return json_response(ctx, account_json(ctx, current))
    payload = decode(NewAccount, verified.jws.payload())
    status = None
    if payload.status is not None:
        if payload.status != AccountStatus.DEACTIVATED.value:
            raise malformed("an account's status can only be changed to deactivated")
        status = AccountStatus.DEACTIVATED
    contact = _contacts(payload.contact) if "contact" in verified.jws.payload() else None
    updated = await ctx.uow.acme.update_account(current.id, status=status, contact=contact)
    assert updated is not None
    if status is AccountStatus.DEACTIVATED:
        # §7.3.6: the server SHOULD cancel pending operations authorized by the account.
        await ctx.uow.acme.cancel_pending(
            current.id, StoredProblem("unauthorized", "the account was deactivated")
        )
    return json_response(ctx, account_json(ctx, updated))


async def key_change(ctx: Ctx) -> web.Response:
    """RFC 8555 §7.3.5: outer JWS by the old key (kid); inner JWS by the new key (jwk) with
    the same url, no nonce, payload {account, oldKey}."""
    verified = await verify_post(ctx)
    current = verified.account
    assert current is not None
    inner = jwslib.parse_inner(verified.jws.payload(), "keyChange inner JWS")
    jwslib.check_algorithm(inner.protected.get("alg"))
    if "jwk" not in inner.protected or "kid" in inner.protected:
        raise malformed("the inner JWS must carry the new key as jwk")
    if "nonce" in inner.protected:
        raise malformed("the inner JWS must not carry a nonce")
    if inner.protected.get("url") != verified.jws.protected.get("url"):
        raise unauthorized_url()
    new_jwk = jwslib.public_jwk(inner.protected["jwk"])
    jwslib.verify(inner, new_jwk)
    change = decode(KeyChange, inner.payload())
    if change.account != verified.jws.protected["kid"]:
        raise Problem("unauthorized", "keyChange account does not match the kid")
    if jwslib.thumbprint(change.old_key) != current.thumbprint:
        raise Problem("unauthorized", "keyChange oldKey is not the account's key")
    thumbprint = jwslib.thumbprint(new_jwk)
    clash = await ctx.uow.acme.find_account(ctx.target.owner, thumbprint)
    if clash is not None:
        location = ctx.url("account", account_id=str(clash.id))
        raise Problem(
            "malformed", "the new key is already in use", 409, headers={"Location": location}
        )
    try:
        updated = await ctx.uow.acme.update_account(current.id, jwk=new_jwk, thumbprint=thumbprint)
    except Conflict:
        raise Problem("malformed", "the new key is already in use", 409) from None
    assert updated is not None
    return json_response(ctx, account_json(ctx, updated))
