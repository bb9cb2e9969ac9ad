"""Migration 0009 on a database that holds data: SQLite rebuilds `profiles` and
`certificates` (batch mode) to make `ca_id` nullable, and rows, foreign keys and the
configuration generation triggers (migration 0007) must all survive the rebuild."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from store import tables
from store.db import create_engine
from store.migrate import alembic_config, head_revision, upgrade

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _upgrade_to(revision: str):  # type: ignore[no-untyped-def]
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return run


def _rows() -> dict[str, dict[str, Any]]:
    org, project, ca, policy, profile, app, cert = (uuid.uuid4() for _ in range(7))
    return {
        "organizations": {"id": org, "name": "org", "created_at": NOW},
        "projects": {
            "id": project,
            "organization_id": org,
            "name": "p",
            "status": "active",
            "wrapped_data_key": b"k",
            "created_at": NOW,
        },
        "certificate_authorities": {
            "id": ca,
            "project_id": project,
            "name": "root",
            "kind": "root",
            "parent_id": None,
            "key_type": "ec-p256",
            "certificate_pem": "pem",
            "chain_pem": "",
            "subject": "CN=root",
            "serial": "01",
            "not_before": NOW,
            "not_after": NOW + timedelta(days=1),
            "status": "active",
            "encrypted_key": b"x",
            "created_at": NOW,
        },
        "policies": {
            "id": policy,
            "project_id": project,
            "name": "pol",
            "rules": {},
            "created_at": NOW,
        },
        "profiles": {
            "id": profile,
            "project_id": project,
            "slug": "tls",
            "name": "tls",
            "ca_id": ca,
            "policy_id": policy,
            "validity_days": 30,
            "key_usages": [],
            "extended_key_usages": [],
            "renew_before_days": 10,
            "default_key_type": "ec-p256",
            "enrollment": {},
            "created_at": NOW,
        },
        "applications": {
            "id": app,
            "project_id": project,
            "slug": "app",
            "name": "app",
            "description": "",
            "created_at": NOW,
        },
        "profile_attachments": {
            "id": uuid.uuid4(),
            "application_id": app,
            "profile_id": profile,
            "methods": {},
            "created_at": NOW,
        },
        "certificates": {
            "id": cert,
            "serial": "0a",
            "project_id": project,
            "ca_id": ca,
            "profile_id": profile,
            "application_id": app,
            "subject": "CN=a",
            "common_name": "a",
            "sans": [],
            "sans_text": "",
            "key_type": "ec-p256",
            "not_before": NOW,
            "not_after": NOW + timedelta(days=1),
            "status": "active",
            "revoked_at": None,
            "revocation_reason": None,
            "certificate_pem": "pem",
            "chain_pem": "",
            "method": "api",
            "requester": "t",
            "renewed_from": None,
            "created_at": NOW,
        },
    }


async def test_0009_keeps_rows_keys_and_triggers(database_url: str) -> None:
    rows = _rows()
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0008"))
            for name, row in rows.items():
                await conn.execute(insert(tables.metadata.tables[name]).values(**row))
    finally:
        await engine.dispose()

    await upgrade(database_url)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            assert (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar() == head_revision()
            for name, row in rows.items():
                table = tables.metadata.tables[name]
                found = (
                    (await conn.execute(select(table).where(table.c.id == row["id"])))
                    .mappings()
                    .one()
                )
                assert {k: found[k] for k in row} == row, name
            profile = (await conn.execute(select(tables.profiles))).mappings().one()
            assert profile["issuer_type"] == "ca"
            ca = (await conn.execute(select(tables.certificate_authorities))).mappings().one()
            assert ca["exportable"] is True
            assert (await conn.execute(select(tables.projects.c.exported_at))).scalar() is None
            before = (await conn.execute(text("SELECT value FROM config_generation"))).scalar()
            await conn.execute(update(tables.profiles).values(name="renamed"))
        # PostgreSQL's triggers are deferred to commit (migration 0007): read afterwards.
        async with engine.begin() as conn:
            after = (await conn.execute(text("SELECT value FROM config_generation"))).scalar()
            assert after > before, "the profiles trigger is gone"
        # Foreign keys still hold on the rebuilt tables.
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                bad = dict(
                    rows["certificates"], id=uuid.uuid4(), serial="0b", profile_id=uuid.uuid4()
                )
                await conn.execute(insert(tables.certificates).values(**bad))
        # A self-signed profile and its certificate name no CA.
        async with engine.begin() as conn:
            await conn.execute(
                insert(tables.profiles).values(
                    **dict(rows["profiles"], id=uuid.uuid4(), slug="self", ca_id=None),
                    issuer_type="self-signed",
                )
            )
    finally:
        await engine.dispose()


async def test_0009_downgrade_and_upgrade_again(database_url: str) -> None:
    """Down to 0008 and up again keeps the rows that 0008 can hold."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade_to("0008"))
        await upgrade(database_url)
        async with engine.begin() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            assert version == head_revision()
    finally:
        await engine.dispose()


def _downgrade_to(revision: str):  # type: ignore[no-untyped-def]
    def run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    return run
