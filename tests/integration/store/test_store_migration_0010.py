"""Migration 0010 on a database that holds data: approval policies and certificate
requests keep their rows; application_id becomes nullable in both without a rebuild
(SQLite: the CREATE statement is rewritten), the 0007 trigger of approval_policies still
counts configuration changes, foreign keys still hold, and a profile has at most one
legacy policy. Then down to 0009 and up again."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from store import tables, tables_approvals
from store.db import create_engine
from store.migrate import alembic_config, head_revision, upgrade
from tests.integration.store.test_store_migration_0009 import NOW, _rows, _upgrade_to


def _approval_rows(base: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    app, profile = base["applications"]["id"], base["profiles"]["id"]
    return {
        "approval_policies": {
            "id": uuid.uuid4(),
            "application_id": app,
            "profile_id": profile,
            "steps": [{"approvers": [str(uuid.uuid4())], "required": 1}],
            "bypass": [],
            "request_ttl_seconds": 3600,
            "created_at": NOW,
        },
        "certificate_requests": {
            "id": uuid.uuid4(),
            "application_id": app,
            "profile_id": profile,
            "csr_pem": "csr",
            "fingerprint": "f" * 64,
            "requester": "r",
            "requester_id": None,
            "method": "api",
            "state": "open",
            "step": 0,
            "approvals": [],
            "requested_validity_days": None,
            "renewed_from": None,
            "certificate_id": None,
            "comment": "",
            "created_at": NOW,
            "expires_at": NOW + timedelta(hours=1),
            "updated_at": NOW,
            "version": 1,
        },
    }


async def test_0010_keeps_rows_and_triggers_and_goes_back(database_url: str) -> None:
    base = _rows()
    rows = _approval_rows(base)
    project = base["projects"]["id"]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0009"))
            for name, row in {**base, **rows}.items():
                await conn.execute(insert(tables.metadata.tables[name]).values(**row))
    finally:
        await engine.dispose()

    await upgrade(database_url)

    policies, requests = tables_approvals.approval_policies, tables_approvals.certificate_requests
    legacy = dict(
        rows["approval_policies"], id=uuid.uuid4(), application_id=None, project_id=project
    )
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
            before = (await conn.execute(text("SELECT value FROM config_generation"))).scalar()
            await conn.execute(insert(policies).values(**legacy))
            await conn.execute(
                insert(requests).values(
                    **dict(
                        rows["certificate_requests"],
                        id=uuid.uuid4(),
                        application_id=None,
                        fingerprint="e" * 64,
                    )
                )
            )
            await conn.execute(update(policies).values(request_ttl_seconds=7200))
        async with engine.begin() as conn:
            after = (await conn.execute(text("SELECT value FROM config_generation"))).scalar()
            assert after > before, "the approval_policies trigger is gone"
        # One legacy policy per profile.
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert(policies).values(**dict(legacy, id=uuid.uuid4())))
        # The new foreign key holds.
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    insert(policies).values(
                        **dict(
                            legacy,
                            id=uuid.uuid4(),
                            profile_id=base["profiles"]["id"],
                            project_id=uuid.uuid4(),
                            application_id=base["applications"]["id"],
                        )
                    )
                )

        # Down to 0009: legacy rows go, the others stay; and up again.
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade_to("0009"))
        async with engine.begin() as conn:
            assert (
                await conn.execute(text("SELECT count(*) FROM approval_policies"))
            ).scalar() == 1
            assert (
                await conn.execute(text("SELECT count(*) FROM certificate_requests"))
            ).scalar() == 1
    finally:
        await engine.dispose()
    await upgrade(database_url)


def _downgrade_to(revision: str):  # type: ignore[no-untyped-def]
    def run(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), revision)

    return run
