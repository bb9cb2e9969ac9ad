"""`certgate project export PROJECT [--dry-run] [--again] [--json]` through click's
CliRunner, on the parametrized database_url: the same service as the REST route
(tests/integration/api/test_export.py covers the export itself in depth)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest
from cli_helpers import UUID_RE, Cli

from gateway.config import load_config
from gateway.core.model import PolicyRules
from gateway.services import cas, catalog
from gateway.services.audit import SYSTEM
from gateway.services.graph import open_services


@pytest.fixture
def gateway_cli(cli: Cli) -> Cli:
    """conftest.py's `cli` (after a first start), under a name the tests' locals leave free."""
    return cli


def build_legacy(cli: Cli, name: str = "old-pki") -> dict[str, str]:
    """A legacy project: a root named like the active project's, an intermediate under it,
    a policy and a profile on the intermediate (slug `tls-server`, also taken)."""

    async def work() -> dict[str, str]:
        services = await open_services(load_config(None, environ=cli.env))
        try:
            project = await catalog.add_project(services, SYSTEM, name)
            root = await cas.add_ca(
                services, SYSTEM, kind="root", name="root", project_ref=project.id
            )
            inter = await cas.add_ca(
                services, SYSTEM, kind="intermediate", name="old-issuing", parent_id=root.id
            )
            policy = await catalog.add_policy(
                services, SYSTEM, project.id, "old-policy", PolicyRules()
            )
            profile = await catalog.add_profile(
                services,
                SYSTEM,
                project.id,
                {"slug": "tls-server", "ca_id": str(inter.id), "policy_id": str(policy.id)},
            )
        finally:
            await services.close()
        return {
            "project": str(project.id),
            "root": str(root.id),
            "old-issuing": str(inter.id),
            "old-policy": str(policy.id),
            "tls-server": str(profile.id),
        }

    return asyncio.run(work())


def export_json(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli.invoke("project", "export", *args, "--json")
    assert result.exit_code == 0, result.output
    # --json: the result alone on stdout, no progress bar anywhere.
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_ok_dry_run_then_export_by_name(gateway_cli: Cli) -> None:
    cli = gateway_cli
    ids = build_legacy(cli)
    cas_before = cli.cas()

    dry = export_json(cli, "old-pki", "--dry-run")
    assert dry["dry_run"] is True and dry["exported_at"] is None
    assert {e["source_id"] for e in dry["exported"]["cas"]} == {ids["root"], ids["old-issuing"]}
    assert cli.cas() == cas_before  # nothing written

    result = cli.invoke("project", "export", "old-pki")
    assert result.exit_code == 0, result.output
    # The progress bar names each entity on stderr; the summary is on stdout.
    for label in ("ca root", "ca old-issuing", "policy old-policy", "profile tls-server"):
        assert f"exporting {label}" in result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(
        rf"exported ca\s+root-[a-z0-9]{{8}} \(renamed from root\)  {ids['root']} -> {UUID_RE}",
        lines[0],
    ), lines
    assert any(
        re.fullmatch(rf"exported profile\s+tls-server-[a-z0-9]{{8}} \(renamed from tls-server\)"
                     rf"  {ids['tls-server']} -> {UUID_RE}", line)
        for line in lines
    ), lines  # fmt: skip
    assert any(re.match(r"exported policy\s+old-policy  ", line) for line in lines), lines
    assert re.fullmatch(rf"exported into {UUID_RE}", lines[-1]), lines
    # The copies are CAs of the active project now.
    names = {c.name for c in cli.cas()} - {c.name for c in cas_before}
    assert "old-issuing" in names and any(re.fullmatch(r"root-[a-z0-9]{8}", n) for n in names)


def test_fail_second_export_needs_again(gateway_cli: Cli) -> None:
    cli = gateway_cli
    ids = build_legacy(cli)
    first = export_json(cli, ids["project"])
    output = cli.fail("project", "export", ids["project"])
    assert "[already_exported]" in output and first["exported_at"][:19] in output
    again = export_json(cli, ids["project"], "--again")
    assert again["exported_at"] and again["target_project_id"] == first["target_project_id"]
    assert all(e["renamed_from"] for e in again["exported"]["cas"])


def test_fail_unknown_and_active_project(gateway_cli: Cli) -> None:
    cli = gateway_cli
    output = cli.fail("project", "export", "no-such-project")
    assert "[project_not_found]" in output
    output = cli.fail("project", "export", str(uuid.uuid4()))
    assert "[project_not_found]" in output
    output = cli.fail("project", "export", "default")  # the bootstrap's active project
    assert "[export_active_project]" in output
