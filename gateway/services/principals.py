"""Principals (users, machine identities) and their API tokens: the use cases behind the
REST API (gateway.api.principals, gateway.api.me) and the CLI. Each opens its own
transaction; the steps they run inside it (create_principal, create_token, …) live in
gateway.services.auth, where the bootstrap also runs them in its own transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.core.errors import NotFound
from gateway.core.model import ApiToken, Application, Member, Principal, PrincipalKind, ProductRole
from gateway.services import auth
from gateway.services.audit import Actor
from gateway.services.graph import Services
from store.db import Tx

UNSET = auth.UNSET


@dataclass(frozen=True)
class Membership:
    """A principal's role in an application (None: the application is gone)."""

    member: Member
    application: Application | None


async def _memberships(tx: Tx, principal_id: uuid.UUID) -> list[Membership]:
    return [
        Membership(m, await tx.applications.get(m.application_id))
        for m in await tx.members.list_for_principal(principal_id)
    ]


async def list_principals(services: Services) -> list[Principal]:
    async with services.db.transaction(read_only=True) as tx:
        return list(await tx.principals.list())


async def get_principal(
    services: Services, principal_id: uuid.UUID
) -> tuple[Principal, list[Membership]]:
    """A principal with its application memberships."""
    async with services.db.transaction(read_only=True) as tx:
        principal = await tx.principals.get(principal_id)
        if principal is None:
            raise NotFound("principal not found")
        return principal, await _memberships(tx, principal.id)


async def find_by_name(services: Services, name: str) -> Principal | None:
    async with services.db.transaction(read_only=True) as tx:
        return await tx.principals.get_by_name(name)


async def memberships(services: Services, principal_id: uuid.UUID) -> list[Membership]:
    async with services.db.transaction(read_only=True) as tx:
        return await _memberships(tx, principal_id)


async def create_principal(
    services: Services,
    actor: Actor,
    name: str,
    *,
    kind: PrincipalKind = PrincipalKind.USER,
    product_role: ProductRole | None = None,
) -> Principal:
    async with services.db.transaction() as tx:
        return await auth.create_principal(
            tx, actor, services.clock.now(), name, kind=kind, product_role=product_role
        )


async def update_principal(
    services: Services,
    actor: Actor,
    principal_id: uuid.UUID,
    *,
    product_role: ProductRole | auth.Unset | None = UNSET,
    disabled: bool | None = None,
) -> Principal:
    """Change the product role (None: no product role) and/or the disabled flag."""
    async with services.db.transaction() as tx:
        return await auth.update_principal(
            tx,
            actor,
            services.clock.now(),
            principal_id,
            product_role=product_role,
            disabled=disabled,
        )


async def delete_principal(
    services: Services, actor: Actor, principal_id: uuid.UUID
) -> tuple[Principal, list[Member]]:
    """Delete a principal with its tokens and memberships (each removal audited)."""
    async with services.db.transaction() as tx:
        return await auth.delete_principal(tx, actor, services.clock.now(), principal_id)


async def list_tokens(services: Services, principal_id: uuid.UUID) -> list[ApiToken]:
    """A principal's tokens (never their secrets: only hashes are stored)."""
    async with services.db.transaction(read_only=True) as tx:
        if await tx.principals.get(principal_id) is None:
            raise NotFound("principal not found")
        return list(await tx.tokens.list(principal_id))


async def own_tokens(services: Services, principal_id: uuid.UUID) -> list[ApiToken]:
    """The calling principal's own tokens: it authenticated, so there is nothing to check."""
    async with services.db.transaction(read_only=True) as tx:
        return list(await tx.tokens.list(principal_id))


async def create_token(
    services: Services,
    actor: Actor,
    principal_id: uuid.UUID,
    name: str,
    expires_at: datetime | None = None,
    *,
    parent: uuid.UUID | None = None,
) -> tuple[ApiToken, str]:
    """The stored token and the plaintext, which is shown once and never stored; with
    `parent`, the token dies with that one's revocation."""
    async with services.db.transaction() as tx:
        return await auth.create_token(
            tx, actor, services.clock.now(), principal_id, name, expires_at, parent=parent
        )


async def revoke_token(
    services: Services,
    actor: Actor,
    token_id: uuid.UUID,
    *,
    owner: uuid.UUID | None = None,
) -> ApiToken:
    """Revoke a token; with `owner`, only one of that principal's own."""
    async with services.db.transaction() as tx:
        return await auth.revoke_token(tx, actor, services.clock.now(), token_id, owner=owner)
