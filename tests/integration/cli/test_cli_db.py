"""`certgate db upgrade`: the schema, idempotent, private files, existing data kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cli_helpers import Cli, bootstrap


def test_db_upgrade_creates_the_schema_and_is_idempotent(fresh_cli: Cli) -> None:
    for _ in range(2):
        output = fresh_cli.ok("db", "upgrade")
        assert output == "database is at the latest schema revision\n"
    # The home and an embedded database are private, as `serve` makes them.
    home = Path(fresh_cli.env["CERTGATE_HOME"])
    assert home.stat().st_mode & 0o777 == 0o700
    url = fresh_cli.env["CERTGATE_DATABASE__URL"]
    if url.startswith("sqlite"):
        assert Path(url.split("///", 1)[1]).stat().st_mode & 0o777 == 0o600

    # The schema is complete: bootstrap works without migrating on its own.
    assert asyncio.run(bootstrap(fresh_cli.env, migrate=False)) is not None
    assert {c.name for c in fresh_cli.cas()} == {"root", "issuing"}


def test_db_upgrade_keeps_existing_data(cli: Cli) -> None:
    before = cli.cas()
    cli.ok("db", "upgrade")
    assert cli.cas() == before
