"""Tables of the SCEP server (RFC 8894): dynamic one-time challenges and transactions.

The RA key, its certificate and the static challenge hash live in `secrets`.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from store.tables import metadata
from store.types import UtcDateTime

# One-time challenge passwords (RFC 8894 §2.3): only a SHA-256 of each is kept; consuming
# one is a conditional UPDATE of `consumed_at`, so it succeeds exactly once.
scep_challenges = Table(
    "scep_challenges",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("scope", String(100), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_by", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("consumed_at", UtcDateTime(), nullable=True),
    UniqueConstraint("digest"),
    Index(None, "scope", "expires_at"),
)

# RFC 8894 §3.2.1.1: a transactionID names one enrollment; a repeated request is answered
# from here instead of issuing again, and CertPoll finds its request here.
scep_transactions = Table(
    "scep_transactions",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("scope", String(100), nullable=False),
    Column("transaction_id", String(255), nullable=False),
    Column("request_key", String(64), nullable=False),
    Column("message_type", Integer(), nullable=False),
    Column("csr_digest", String(64), nullable=False),
    Column("csr_der", LargeBinary(), nullable=False),
    Column("requester", Text(), nullable=False),
    Column("renewed_from", Uuid(), nullable=True),
    Column("state", String(16), nullable=False),
    Column("certificate_id", Uuid(), ForeignKey("certificates.id"), nullable=True),
    Column("request_id", Uuid(), nullable=True),
    Column("fail_info", Integer(), nullable=True),
    Column("reason", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("scope", "transaction_id", "request_key"),
    Index(None, "certificate_id"),
)
