"""Tables for access control (application members). Same metadata as store.tables.

Product roles live on the principal (store.tables.principals.product_role); a membership
gives one principal exactly one role in one application.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, PrimaryKeyConstraint, String, Table, Uuid

from store.tables import metadata
from store.types import UtcDateTime

application_members = Table(
    "application_members",
    metadata,
    Column("application_id", Uuid(), ForeignKey("applications.id"), nullable=False),
    Column("principal_id", Uuid(), ForeignKey("principals.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The natural key is the uniqueness rule "one role per principal per application"; a
    # second add of the same pair fails on it (MemberRepository maps it to already_member).
    PrimaryKeyConstraint("application_id", "principal_id"),
    # Authorization and "my memberships" look members up by principal.
    Index(None, "principal_id"),
)
