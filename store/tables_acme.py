"""Tables for the ACME server (accounts, orders, authorizations, challenges, used nonces).

Everything an ACME exchange needs lives here, so several gateway processes behind one
address serve one client (RFC 8555 leaves server state to the server; we share it).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from store.tables import metadata
from store.types import UtcDateTime

# RFC 8555 §6.5: each nonce is accepted once. Nonces are HMAC-authenticated (see
# protocols.acme.nonces), so handing one out writes nothing; accepting one inserts its row
# here, and the primary key turns a replay into a conflict. A row is kept until the nonce
# could no longer be accepted anyway (`expires_at`), then swept (migration 0008).
acme_used_nonces = Table(
    "acme_used_nonces",
    metadata,
    Column("value", String(64), primary_key=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index(None, "expires_at"),
)

acme_accounts = Table(
    "acme_accounts",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("scope", String(80), nullable=False),
    Column("thumbprint", String(64), nullable=False),
    Column("jwk", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("contact", JSON(), nullable=False),
    Column("eab_kid", String(128), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # RFC 8555 §7.3.1: one account per key per directory.
    UniqueConstraint("scope", "thumbprint"),
)

acme_orders = Table(
    "acme_orders",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("account_id", Uuid(), ForeignKey("acme_accounts.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("identifiers", JSON(), nullable=False),
    Column("authorization_ids", JSON(), nullable=False),
    Column("expires", UtcDateTime(), nullable=False),
    Column("not_before", UtcDateTime(), nullable=True),
    Column("not_after", UtcDateTime(), nullable=True),
    Column("error", JSON(), nullable=True),
    Column("certificate_id", Uuid(), ForeignKey("certificates.id"), nullable=True),
    Column("request_id", Uuid(), nullable=True),
    Column("replaces", Text(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index(None, "account_id"),
    Index(None, "certificate_id"),
)

acme_authorizations = Table(
    "acme_authorizations",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("account_id", Uuid(), ForeignKey("acme_accounts.id"), nullable=False),
    Column("order_id", Uuid(), ForeignKey("acme_orders.id"), nullable=False),
    Column("identifier_type", String(8), nullable=False),
    Column("identifier_value", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires", UtcDateTime(), nullable=False),
    Index(None, "order_id"),
)

acme_challenges = Table(
    "acme_challenges",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("authorization_id", Uuid(), ForeignKey("acme_authorizations.id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("token", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("validated", UtcDateTime(), nullable=True),
    Column("error", JSON(), nullable=True),
    Column("position", Integer(), nullable=False),
    # When validation began (status `processing`); the sweeper ends validations a crashed
    # process left behind (migration 0006).
    Column("started_at", UtcDateTime(), nullable=True),
    Index(None, "authorization_id"),
    Index("ix_acme_challenges_status_started_at", "status", "started_at"),
)
