"""API tokens and principals.

A token is `cgt_<token id hex>_<secret>`. Only a scrypt hash of the secret is stored
(gateway.pki.passwords); the id lets us find the row without scanning. The token row is
read on every request (revocation and expiry take effect at once, in every process);
only the slow hash check is remembered, per process, as a cache.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from gateway.admin.audit import Actor, event
from gateway.clock import SystemClock
from gateway.core.errors import InvalidInput, NotFound, Unauthorized
from gateway.core.model import ApiToken, Principal, PrincipalKind, ProductRole, new_id
from gateway.pki.passwords import hash_secret, verify_secret
from store.db import Database, Tx

TOKEN_PREFIX = "cgt_"
_CACHE_SIZE = 4096


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
    def __init__(self, db: Database, clock: SystemClock) -> None:
        self._db = db
        self._clock = clock
        # token id -> sha256(secret) of a secret that passed the scrypt check.
        self._verified: OrderedDict[uuid.UUID, bytes] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Authenticated:
        if not authorization:
            raise Unauthorized("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        token_id, secret = _split(token.strip())
        async with self._db.transaction(read_only=True) as tx:
            row = await tx.tokens.get(token_id)
            principal = await tx.principals.get(row.principal_id) if row else None
        # Same message for every failure: a caller learns nothing about which part was wrong.
        if row is None or principal is None or principal.disabled:
            raise Unauthorized("invalid API token")
        if not self._secret_ok(token_id, secret, row.secret_hash):
            raise Unauthorized("invalid API token")
        if row.revoked_at is not None:
            raise Unauthorized("API token has been revoked", code="token_revoked")
        if row.expires_at is not None and row.expires_at <= self._clock.now():
            raise Unauthorized("API token has expired", code="token_expired")
        return Authenticated(principal, row)

    def _secret_ok(self, token_id: uuid.UUID, secret: str, stored: str) -> bool:
        digest = hashlib.sha256(secret.encode()).digest()
        cached = self._verified.get(token_id)
        if cached is not None and hmac.compare_digest(cached, digest):
            self._verified.move_to_end(token_id)
            return True
        if not verify_secret(secret, stored):
            return False
        self._verified[token_id] = digest
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return True


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
) -> tuple[ApiToken, str]:
    """Returns the stored token and the plaintext, which is shown once and never stored."""
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
    return token, f"{TOKEN_PREFIX}{token.id.hex}_{secret}"
