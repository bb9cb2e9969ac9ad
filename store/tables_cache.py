"""The configuration generation: one row whose counter database triggers raise whenever a
configuration table changes (migration 0007). Every gateway process compares it with the
generation its read cache (store.cache) was filled at. Same metadata as store.tables."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, Table

from store.tables import metadata

# The tables whose rows the hot paths cache: a write to any of them raises the generation.
# Certificates, requests, audit, CRLs and protocol state (ACME objects, SCEP transactions
# and challenges) are not configuration and are never cached.
CONFIG_TABLES = (
    "organizations",
    "projects",
    "certificate_authorities",
    "policies",
    "profiles",
    "applications",
    "profile_attachments",
    "principals",
    "api_tokens",
    "secrets",
    "application_members",
    "approval_policies",
)

config_generation = Table(
    "config_generation",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("value", BigInteger(), nullable=False),
)
