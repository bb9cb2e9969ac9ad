"""The CLI tests' fixtures, on the parametrized database_url: `fresh_cli` (an empty home
and database) and `cli` (after a first start). The commands call asyncio.run
themselves, so the tests here are plain `def`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli_helpers import Cli, bootstrap, environment
from click.testing import CliRunner

from gateway.config import load_config
from tests.helpers.databases import Seed


@pytest.fixture
def fresh_cli(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    # Away from the repository, so the CLI does not pick up ./conf/certgate.toml.
    monkeypatch.chdir(tmp_path)
    return Cli(environment(tmp_path, database_url), database_url, tmp_path, CliRunner())


@pytest.fixture
def cli(request: pytest.FixtureRequest, fresh_cli: Cli, seed_gateway: Seed) -> Cli:
    """After a first start: a copy of the run's bootstrapped template (tests/conftest.py),
    or, for a test marked first_start, the bootstrap itself."""
    if request.node.get_closest_marker("first_start"):
        assert asyncio.run(bootstrap(fresh_cli.env)) is not None
    else:
        seed_gateway(load_config(None, environ=fresh_cli.env))
    return fresh_cli
