"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Written out in full (not derived from store.tables) so that it never changes once
released; tests/integration/store/test_migrations.py checks it still matches the tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE_ONLY = sa.text("status = 'active'")


def _ts(name: str, nullable: bool = False) -> "sa.Column[object]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("name", name="uq_organizations_name"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("wrapped_data_key", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name="fk_projects_organization_id_organizations",
        ),
        sa.UniqueConstraint("organization_id", "name", name="uq_projects_organization_id_name"),
    )
    op.create_index(
        "uq_projects_one_active", "projects", ["organization_id"], unique=True,
        sqlite_where=_ACTIVE_ONLY, postgresql_where=_ACTIVE_ONLY,
    )
    op.create_table(
        "certificate_authorities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("key_type", sa.String(16), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        _ts("not_before"),
        _ts("not_after"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary(), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_certificate_authorities"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"],
            name="fk_certificate_authorities_project_id_projects",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["certificate_authorities.id"],
            name="fk_certificate_authorities_parent_id_certificate_authorities",
        ),
        sa.UniqueConstraint(
            "project_id", "name", name="uq_certificate_authorities_project_id_name"
        ),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_policies_project_id_projects"
        ),
        sa.UniqueConstraint("project_id", "name", name="uq_policies_project_id_name"),
    )
    op.create_table(
        "profiles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("policy_id", sa.Uuid(), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        sa.Column("key_usages", sa.JSON(), nullable=False),
        sa.Column("extended_key_usages", sa.JSON(), nullable=False),
        sa.Column("renew_before_days", sa.Integer(), nullable=False),
        sa.Column("default_key_type", sa.String(16), nullable=False),
        sa.Column("enrollment", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_profiles"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_profiles_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["ca_id"], ["certificate_authorities.id"],
            name="fk_profiles_ca_id_certificate_authorities",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name="fk_profiles_policy_id_policies"
        ),
        sa.UniqueConstraint("project_id", "slug", name="uq_profiles_project_id_slug"),
    )
    op.create_index("ix_profiles_ca_id", "profiles", ["ca_id"])
    op.create_index("ix_profiles_policy_id", "profiles", ["policy_id"])
    op.create_table(
        "applications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_applications_project_id_projects"
        ),
        sa.UniqueConstraint("project_id", "slug", name="uq_applications_project_id_slug"),
    )
    op.create_table(
        "profile_attachments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("methods", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_profile_attachments"),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"],
            name="fk_profile_attachments_application_id_applications",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name="fk_profile_attachments_profile_id_profiles"
        ),
        sa.UniqueConstraint(
            "application_id", "profile_id",
            name="uq_profile_attachments_application_id_profile_id",
        ),
    )
    op.create_index("ix_profile_attachments_profile_id", "profile_attachments", ["profile_id"])
    op.create_table(
        "certificates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("serial", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("application_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("common_name", sa.Text(), nullable=True),
        sa.Column("sans", sa.JSON(), nullable=False),
        sa.Column("sans_text", sa.Text(), nullable=False),
        sa.Column("key_type", sa.String(32), nullable=False),
        _ts("not_before"),
        _ts("not_after"),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("revoked_at", nullable=True),
        sa.Column("revocation_reason", sa.String(32), nullable=True),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("renewed_from", sa.Uuid(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_certificates"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_certificates_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["ca_id"], ["certificate_authorities.id"],
            name="fk_certificates_ca_id_certificate_authorities",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name="fk_certificates_profile_id_profiles"
        ),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"],
            name="fk_certificates_application_id_applications",
        ),
        sa.ForeignKeyConstraint(
            ["renewed_from"], ["certificates.id"],
            name="fk_certificates_renewed_from_certificates",
        ),
    )
    # The unique serial index is what makes concurrent issuance safe (DuplicateSerial).
    op.create_index("ix_certificates_serial", "certificates", ["serial"], unique=True)
    for column in (
        "project_id", "application_id", "profile_id", "ca_id",
        "status", "not_after", "common_name", "created_at",
    ):
        op.create_index(f"ix_certificates_{column}", "certificates", [column])
    op.create_table(
        "principals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("product_role", sa.String(16), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_principals"),
        sa.UniqueConstraint("name", name="uq_principals_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("principal_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("expires_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_api_tokens_principal_id_principals"
        ),
    )
    op.create_index("ix_api_tokens_principal_id", "api_tokens", ["principal_id"])
    op.create_table(
        "secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_secrets"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_secrets_project_id_projects"
        ),
        sa.UniqueConstraint("owner", "purpose", name="uq_secrets_owner_purpose"),
    )
    op.create_table(
        "crls",
        sa.Column("ca_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        _ts("this_update"),
        _ts("next_update"),
        sa.PrimaryKeyConstraint("ca_id", name="pk_crls"),
        sa.ForeignKeyConstraint(
            ["ca_id"], ["certificate_authorities.id"],
            name="fk_crls_ca_id_certificate_authorities",
        ),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        _ts("at"),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("application_id", sa.Uuid(), nullable=True),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    for column in ("at", "application_id", "project_id", "action", "target_id"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])


def downgrade() -> None:
    for table in (
        "audit_events", "crls", "secrets", "api_tokens", "principals", "certificates",
        "profile_attachments", "applications", "profiles", "policies",
        "certificate_authorities", "projects", "organizations",
    ):
        op.drop_table(table)
