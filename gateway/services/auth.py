"""API tokens and principals.

A token is `cgt_<token id hex>_<secret>`. Only a scrypt hash of the secret is stored
(gateway.pki.passwords); the id lets us find the row without scanning. The token row is
read on every request (revocation and expiry take effect at once, in every process);
only the slow hash check is remembered, per process (gateway.pki.verifier).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.clock import SystemClock
from gateway.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from gateway.core.model import ApiToken, Member, Principal, PrincipalKind, ProductRole, new_id
from gateway.pki.passwords import hash_secret
from gateway.pki.verifier import SecretVerifier
from gateway.services.audit import Actor, event
from gateway.services.members import removal_event
from store.db import Database, Tx
from store.filters import AuditFilter

TOKEN_PREFIX = "cgt_"
# Audit action recording that a token minted another (target: the parent).
DERIVED = "token.derived"
_MAX_DERIVED = 10_000


class Unset:
    """Marks "leave as is" where None is a meaningful value (no product role)."""


UNSET = Unset()


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    token: ApiToken


def _split(token: str) -> tuple[uuid.UUID, str]:
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("malformed API token")
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not secret:
        raise Unauthorized("malformed API token")
    try:
        return uuid.UUID(hex=token_id), secret
    except ValueError:
        raise Unauthorized("malformed API token") from None


class Authenticator:
    def __init__(self, db: Database, clock: SystemClock, verifier: SecretVerifier) -> None:
        self._db = db
        self._clock = clock
        # The process's one verifier (services.graph): scrypt off the event loop, so wrong
        # secrets for a known token id cannot stall other requests; verified secrets
        # memoized by stored hash, so a rotated token misses.
        self._verifier = verifier

    async def authenticate(self, authorization: str | None) -> Authenticated:
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        token_id, secret = _split(token.strip())

        async def load(tx: Tx) -> tuple[ApiToken | None, Principal | None]:
            row = await tx.tokens.get(token_id)
            return row, await tx.principals.get(row.principal_id) if row else None

        # Through the read cache (store.cache): revoking a token or disabling a principal
        # is a configuration write, which drops it.
        row, principal = await self._db.cached(("token", token_id), load)
        # Same message for every failure before the secret is proven: a caller learns
        # nothing about which part was wrong. A deleted principal's tokens are deleted
        # with it, so they land here too.
        if row is None or principal is None:
            raise Unauthorized("invalid API token")
        if not await self._verifier.verify(secret, row.secret_hash):
            raise Unauthorized("invalid API token")
        # The holder proved the secret: telling them why it no longer works leaks nothing.
        if row.revoked_at is not None:
            raise Unauthorized("API token has been revoked", code="token_revoked")
        if row.expires_at is not None and row.expires_at <= self._clock.now():
            raise Unauthorized("API token has expired", code="token_expired")
        if principal.disabled:
            raise Unauthorized("the token's principal is disabled", code="principal_disabled")
        return Authenticated(principal, row)


async def create_principal(
    tx: Tx,
    actor: Actor,
    at: datetime,
    name: str,
    *,
    kind: PrincipalKind = PrincipalKind.USER,
    product_role: ProductRole | None = None,
) -> Principal:
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise InvalidInput("principal name must be 1 to 128 characters")
    principal = Principal(new_id(), name.strip(), kind, product_role, at)
    await tx.principals.add(principal)
    await tx.audit.add(
        event(
            actor,
            at,
            "principal.created",
            "principal",
            principal.id,
            details={
                "name": principal.name,
                "kind": kind.value,
                "product_role": product_role.value if product_role else None,
            },
        )
    )
    return principal


async def create_token(
    tx: Tx,
    actor: Actor,
    at: datetime,
    principal_id: uuid.UUID,
    name: str,
    expires_at: datetime | None = None,
    *,
    parent: uuid.UUID | None = None,
) -> tuple[ApiToken, str]:
    """Returns the stored token and the plaintext, which is shown once and never stored.
    `parent`: the token that minted this one (/me/tokens); revoking it revokes this too."""
    if await tx.principals.get(principal_id) is None:
        raise NotFound("principal not found")
    if expires_at is not None and expires_at <= at:
        raise InvalidInput("expires_at must be in the future")
    secret = secrets.token_urlsafe(32)
    token = ApiToken(
        id=new_id(),
        principal_id=principal_id,
        name=name,
        secret_hash=hash_secret(secret),
        created_at=at,
        expires_at=expires_at,
        revoked_at=None,
    )
    await tx.tokens.add(token)
    await tx.audit.add(
        event(
            actor,
            at,
            "token.created",
            "token",
            token.id,
            details={
                "principal_id": str(principal_id),
                "name": name,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    )
    if parent is not None:
        # The derivation is recorded as an audit event on the parent (the tokens table has
        # no column for it; adding one needs a migration): revoke_token follows it.
        await tx.audit.add(
            event(actor, at, DERIVED, "token", parent, details={"token_id": str(token.id)})
        )
    return token, f"{TOKEN_PREFIX}{token.id.hex}_{secret}"


def _state(principal: Principal) -> dict[str, Any]:
    """What an audit event records about a principal: no token material, ever."""
    return {
        "name": principal.name,
        "kind": principal.kind.value,
        "product_role": principal.product_role.value if principal.product_role else None,
        "disabled": principal.disabled,
    }


def _is_active_admin(principal: Principal) -> bool:
    return principal.product_role is ProductRole.ADMIN and not principal.disabled


async def _keep_one_admin(tx: Tx) -> None:
    """Refuse a change that would leave nobody able to manage the product (only the
    database, by hand, could undo it)."""
    if await tx.principals.count_active_admins(lock=True) <= 1:
        raise Conflict(
            "this is the last enabled Product Admin; make another one first", code="last_admin"
        )


async def update_principal(
    tx: Tx,
    actor: Actor,
    at: datetime,
    principal_id: uuid.UUID,
    *,
    product_role: ProductRole | Unset | None = UNSET,
    disabled: bool | None = None,
) -> Principal:
    """Change the product role (None: no product role) and/or the disabled flag."""
    before = await tx.principals.get(principal_id)
    if before is None:
        raise NotFound("principal not found")
    role = before.product_role if isinstance(product_role, Unset) else product_role
    new_disabled = before.disabled if disabled is None else disabled
    if _is_active_admin(before) and not (role is ProductRole.ADMIN and not new_disabled):
        await _keep_one_admin(tx)
    after = await tx.principals.update(principal_id, product_role=role, disabled=new_disabled)
    if after is None:
        raise NotFound("principal not found")
    await tx.audit.add(
        event(
            actor,
            at,
            "principal.updated",
            "principal",
            principal_id,
            details={"before": _state(before), "after": _state(after)},
        )
    )
    return after


async def delete_principal(
    tx: Tx, actor: Actor, at: datetime, principal_id: uuid.UUID
) -> tuple[Principal, list[Member]]:
    """Delete a principal with its tokens (they stop working at once) and memberships.
    Each removed membership is audited against its application, so that application's
    Auditors see who lost access."""
    principal = await tx.principals.get(principal_id)
    if principal is None:
        raise NotFound("principal not found")
    if _is_active_admin(principal):
        await _keep_one_admin(tx)
    removed = await tx.members.remove_principal(principal_id)
    tokens = await tx.tokens.delete_for_principal(principal_id)
    if not await tx.principals.delete(principal_id):
        raise NotFound("principal not found")
    for member in removed:
        app = await tx.applications.get(member.application_id)
        await tx.audit.add(
            removal_event(
                actor,
                at,
                app.project_id if app else None,
                member,
                principal.name,
                reason="principal deleted",
            )
        )
    await tx.audit.add(
        event(
            actor,
            at,
            "principal.deleted",
            "principal",
            principal_id,
            details={
                "before": _state(principal),
                "after": None,
                "tokens_deleted": tokens,
                "memberships_removed": [
                    {"application_id": str(m.application_id), "role": m.role.value} for m in removed
                ],
            },
        )
    )
    return principal, removed


async def revoke_token(
    tx: Tx,
    actor: Actor,
    at: datetime,
    token_id: uuid.UUID,
    *,
    owner: uuid.UUID | None = None,
) -> ApiToken:
    """Revoke a token; with `owner`, only one of that principal's own (anyone else's is
    "not found", so a caller cannot probe other principals' token ids)."""
    token = await tx.tokens.get(token_id)
    if token is None or (owner is not None and token.principal_id != owner):
        raise NotFound("token not found")
    if token.revoked_at is not None:
        raise Conflict("the token is already revoked", code="already_revoked")
    revoked = await tx.tokens.revoke(token_id, at)
    if revoked is None:  # revoked by a concurrent request since the read above
        raise Conflict("the token is already revoked", code="already_revoked")
    await tx.audit.add(
        event(
            actor,
            at,
            "token.revoked",
            "token",
            token_id,
            details={"principal_id": str(token.principal_id), "name": token.name},
        )
    )
    await _revoke_derived(tx, actor, at, token_id)
    return revoked


async def _revoke_derived(tx: Tx, actor: Actor, at: datetime, root: uuid.UUID) -> None:
    """Revoke every token minted with `root`, and those minted with them: a token made
    from a leaked one must not outlive the leaked one's revocation."""
    pending, seen = [root], {root}
    while pending:
        parent = pending.pop()
        derived = await tx.audit.list(
            AuditFilter(action=DERIVED, target_id=str(parent)), limit=_MAX_DERIVED
        )
        for record in derived.items:
            child_id = uuid.UUID(str(record.details["token_id"]))
            if child_id in seen:
                continue
            seen.add(child_id)
            pending.append(child_id)
            child = await tx.tokens.get(child_id)
            if child is None or child.revoked_at is not None:
                continue
            if await tx.tokens.revoke(child_id, at) is None:
                continue
            await tx.audit.add(
                event(
                    actor,
                    at,
                    "token.revoked",
                    "token",
                    child_id,
                    details={
                        "principal_id": str(child.principal_id),
                        "name": child.name,
                        "parent_token_id": str(parent),
                    },
                )
            )
