"""`certgate` commands. They call the same services as the REST API (gateway.admin)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from gateway.api import serializers as ser
from gateway.api.audit import event_json
from gateway.config import Config, ConfigError, load_config
from gateway.core.enrollment import Pending
from gateway.core.errors import DomainError
from gateway.services import audit as audit_log
from gateway.services import cas as ca_admin
from gateway.services import certificates as cert_admin
from gateway.services import export as project_export
from gateway.services import principals
from gateway.services.audit import Actor
from gateway.services.graph import Services, open_services, prepare_home
from store.filters import AuditFilter, CertificateListStatus
from store.migrate import upgrade_sync

T = TypeVar("T")
DEFAULT_CONFIG = Path("conf/certgate.toml")
CLI_ACTOR = Actor("cli")


def _config(ctx: click.Context) -> Config:
    path = ctx.obj.get("config_path")
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    try:
        return load_config(path)
    except ConfigError as err:
        raise click.ClickException(str(err)) from None


def _run(ctx: click.Context, work: Callable[[Services], Awaitable[T]]) -> T:
    """Open the services, run one operation, close; domain errors become clean messages."""

    async def main() -> T:
        services = await open_services(_config(ctx))
        try:
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(main())
    except DomainError as err:
        raise click.ClickException(f"{err.message} [{err.code}]") from None
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from None


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: conf/certgate.toml when present).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """certgate: certificate enrollment gateway (ACME, EST, SCEP and REST)."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the gateway (bootstraps an empty database on first start)."""
    config = _config(ctx)
    logging.basicConfig(
        level=config.logging.level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The HTTP server is the composition root's (gateway.app.run), handed in by the console
    # script gateway.app:main, so that nothing below gateway.app imports it (DESIGN.md rule 6).
    run = ctx.obj.get("run_server")
    if run is None:
        raise click.ClickException("serve needs the certgate console script (gateway.app:main)")
    try:
        asyncio.run(run(config))
    except KeyboardInterrupt:
        pass


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or upgrade the schema to the latest migration."""
    config = _config(ctx)
    prepare_home(config)
    upgrade_sync(config.database_url)
    click.echo("database is at the latest schema revision")


@main.group()
def ca() -> None:
    """Certificate authorities of the active project."""


@ca.command("list")
@click.pass_context
def ca_list(ctx: click.Context) -> None:
    """List CAs."""

    async def work(s: Services) -> list[dict[str, Any]]:
        return [ser.ca(c) for c in await ca_admin.list_cas(s, None)]

    for item in _run(ctx, work):
        click.echo(
            f"{item['id']}  {item['kind']:<12} {item['status']:<8} {item['key_type']:<9} "
            f"{item['name']}  ({item['subject']})"
        )


@ca.command("create")
@click.option("--name", required=True)
@click.option(
    "--kind", type=click.Choice(["root", "intermediate"]), default="root", show_default=True
)
@click.option("--parent", "parent_id", type=click.UUID, help="Issuing CA (for an intermediate).")
@click.option("--key-type", default="ec-p256", show_default=True)
@click.option("--validity-days", type=int, default=None)
@click.option("--common-name", default=None)
@click.pass_context
def ca_create(
    ctx: click.Context,
    name: str,
    kind: str,
    parent_id: uuid.UUID | None,
    key_type: str,
    validity_days: int | None,
    common_name: str | None,
) -> None:
    """Create an internal root or intermediate CA."""
    if kind == "intermediate" and parent_id is None:
        raise click.UsageError("--parent is required for an intermediate CA")

    async def work(s: Services) -> dict[str, Any]:
        created = await ca_admin.add_ca(
            s,
            CLI_ACTOR,
            kind=kind,
            name=name,
            parent_id=parent_id,
            common_name=common_name,
            key_type=ca_admin.parse_key_type(key_type),
            validity_days=validity_days or None,  # None (or 0): the configured default
        )
        return ser.ca(created)

    item = _run(ctx, work)
    click.echo(f"created {item['kind']} CA {item['name']} ({item['id']})")


@ca.command("import")
@click.option("--name", required=True)
@click.option("--cert", "cert_file", type=click.File("r"), required=True)
@click.option("--key", "key_file", type=click.File("r"), required=True)
@click.option("--chain", "chain_file", type=click.File("r"), default=None)
@click.option(
    "--passphrase-env", default=None, help="Environment variable holding the key passphrase."
)
@click.pass_context
def ca_import(
    ctx: click.Context,
    name: str,
    cert_file: Any,
    key_file: Any,
    chain_file: Any,
    passphrase_env: str | None,
) -> None:
    """Import an existing CA certificate and private key."""
    import os

    passphrase = os.environ.get(passphrase_env) if passphrase_env else None
    cert_pem, key_pem = cert_file.read(), key_file.read()
    chain_pem = chain_file.read() if chain_file else None

    async def work(s: Services) -> dict[str, Any]:
        created = await ca_admin.import_ca(
            s,
            CLI_ACTOR,
            name=name,
            certificate_pem=cert_pem,
            private_key_pem=key_pem,
            passphrase=passphrase,
            chain_pem=chain_pem,
        )
        return ser.ca(created)

    item = _run(ctx, work)
    click.echo(f"imported {item['kind']} CA {item['name']} ({item['id']})")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--principal", "principal_name", required=True, help="Principal name, e.g. admin.")
@click.option("--name", default="cli", show_default=True)
@click.pass_context
def token_create(ctx: click.Context, principal_name: str, name: str) -> None:
    """Create an API token for a principal and print it (shown once)."""

    async def work(s: Services) -> str:
        principal = await principals.find_by_name(s, principal_name)
        if principal is None:
            raise click.ClickException(f"no principal named '{principal_name}'")
        _, plaintext = await principals.create_token(s, CLI_ACTOR, principal.id, name)
        return plaintext

    click.echo(_run(ctx, work))


@main.group()
def cert() -> None:
    """Certificates of an application."""


@cert.command("issue")
@click.option("--app", "app_slug", required=True)
@click.option("--profile", "profile_slug", required=True)
@click.option(
    "--csr", "csr_file", type=click.File("r"), help="PEM CSR file; omit for a server-side key."
)
@click.option("--cn", default=None, help="Common name (server-side key generation).")
@click.option("--san", "sans", multiple=True, help="SAN (dns:…, ip:…); repeatable.")
@click.option("--key-type", default=None)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write certificate + chain here (and the key to OUT.key).",
)
@click.pass_context
def cert_issue(
    ctx: click.Context,
    app_slug: str,
    profile_slug: str,
    csr_file: Any,
    cn: str | None,
    sans: tuple[str, ...],
    key_type: str | None,
    out_file: str | None,
) -> None:
    """Issue a certificate."""
    body: dict[str, Any] = {}
    if csr_file is not None:
        body["csr"] = csr_file.read()
    else:
        if cn is None and not sans:
            raise click.UsageError("give --csr, or --cn and/or --san")
        body.update({"subject": cn, "sans": list(sans)} if cn else {"sans": list(sans)})
        if key_type:
            body["key_type"] = key_type
    # Checked before issuing: a failed write afterwards would lose the server-side key.
    if out_file and not Path(out_file).parent.is_dir():
        raise click.BadParameter(
            f"directory '{Path(out_file).parent}' does not exist", param_hint="'--out'"
        )

    async def work(s: Services) -> cert_admin.IssueResult:
        target = await cert_admin.resolve(s, app_slug, profile_slug)
        return await cert_admin.issue(s, target, CLI_ACTOR, body)

    result = _run(ctx, work)
    if isinstance(result.outcome, Pending):
        click.echo(f"pending approval: request {result.outcome.request_id}")
        return
    issued = result.outcome.certificate
    if out_file:
        Path(out_file).write_text(issued.certificate_pem + issued.chain_pem)
        if result.private_key_pem:
            from gateway.services.graph import write_private_file

            write_private_file(Path(out_file + ".key"), result.private_key_pem)
        click.echo(f"issued {issued.id} serial {issued.serial} -> {out_file}")
    else:
        click.echo(issued.certificate_pem + issued.chain_pem, nl=False)
        if result.private_key_pem:
            click.echo(result.private_key_pem, nl=False)


@cert.command("list")
@click.option("--app", "app_slug", required=True)
@click.option("--status", type=click.Choice(["active", "revoked", "expired"]), default=None)
@click.option("--search", default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.pass_context
def cert_list(
    ctx: click.Context, app_slug: str, status: str | None, search: str | None, limit: int
) -> None:
    """List an application's certificates."""

    async def work(s: Services) -> list[dict[str, Any]]:
        app = await cert_admin.resolve_application(s, app_slug)
        page = await cert_admin.list_certificates(
            s,
            app,
            status=cast(CertificateListStatus | None, status),
            search=search,
            limit=limit,
        )
        return [ser.certificate(c) for c in page.items]

    for item in _run(ctx, work):
        click.echo(
            f"{item['id']}  {item['status']:<8} {item['not_after']}  {item['serial']}  "
            f"{item['common_name'] or ''} {' '.join(item['sans'])}"
        )


@cert.command("revoke")
@click.option("--app", "app_slug", required=True)
@click.option("--id", "cert_id", type=click.UUID, required=True)
@click.option("--reason", default="unspecified", show_default=True)
@click.pass_context
def cert_revoke(ctx: click.Context, app_slug: str, cert_id: uuid.UUID, reason: str) -> None:
    """Revoke a certificate (the CRL is rebuilt at once)."""

    async def work(s: Services) -> dict[str, Any]:
        app = await cert_admin.resolve_application(s, app_slug)
        revoked = await cert_admin.revoke(
            s, app, cert_id, cert_admin.parse_reason(reason), CLI_ACTOR
        )
        return ser.certificate(revoked)

    item = _run(ctx, work)
    click.echo(f"revoked {item['id']} serial {item['serial']} ({item['revocation_reason']})")


@main.group()
def audit() -> None:
    """The audit log."""


@audit.command("list")
@click.option("--app", "app_slug", default=None, help="Only this application's events.")
@click.option("--action", default=None, help="e.g. certificate.issued, member.added.")
@click.option("--actor", default=None, help="Exact actor, e.g. principal:admin or cli.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON, with details.")
@click.pass_context
def audit_list(
    ctx: click.Context,
    app_slug: str | None,
    action: str | None,
    actor: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List audit events, newest first."""

    async def work(s: Services) -> list[dict[str, Any]]:
        app_id = None
        if app_slug is not None:
            app_id = (await cert_admin.resolve_application(s, app_slug)).id
        page = await audit_log.list_events(
            s, AuditFilter(application_id=app_id, action=action, actor=actor), limit, 0
        )
        slugs = await audit_log.application_slugs(s, page.items)
        return [
            {
                **event_json(e),
                "application": slugs.get(e.application_id) if e.application_id else None,
            }
            for e in page.items
        ]

    items = _run(ctx, work)
    if as_json:
        _echo_json(items)
        return
    for item in items:
        click.echo(
            f"{item['at']}  {item['actor']:<20} {item['action']:<28} "
            f"{item['target_type']}:{item['target_id']}  {item['application'] or '-'}"
        )


@main.group()
def project() -> None:
    """Projects (legacy ones are exported into the active project)."""


@project.command("export")
@click.argument("project_ref", metavar="PROJECT")
@click.option("--dry-run", is_flag=True, help="Compute the result, write nothing.")
@click.option("--again", is_flag=True, help="Export a project that was exported before.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (no progress).")
@click.pass_context
def project_export_cmd(
    ctx: click.Context, project_ref: str, dry_run: bool, again: bool, as_json: bool
) -> None:
    """Copy a legacy PROJECT (id or name) into the active project, in one transaction."""
    bars: list[Any] = []

    def progress(done: int, total: int, label: str) -> None:
        if not bars:  # the total is known once the service has read the project
            bars.append(click.progressbar(length=total, label="exporting", file=sys.stderr))
        bars[0].label = f"exporting {label}"
        bars[0].update(1)

    async def work(s: Services) -> dict[str, Any]:
        try:
            result = await project_export.export_project(
                s, CLI_ACTOR, project_ref, dry_run=dry_run, again=again,
                progress=None if as_json else progress,
            )  # fmt: skip
        finally:
            if bars:  # also after a failure: the bar hid the terminal's cursor
                bars[0].render_finish()
        return result.as_dict()

    data = _run(ctx, work)
    if as_json:
        _echo_json(data)
        return
    singular = {"cas": "ca", "policies": "policy", "profiles": "profile"}
    for kind, entries in data["exported"].items():
        for e in entries:
            renamed = f" (renamed from {e['renamed_from']})" if e["renamed_from"] else ""
            click.echo(
                f"exported {singular[kind]:<7} {e['name']}{renamed}  {e['source_id']} -> {e['id']}"
            )
    for e in data["skipped"]:
        click.echo(f"skipped  {e['kind']:<7} {e['name']}  {e['source_id']}: {e['reason']}")
    target = data["target_project_id"]
    click.echo(
        f"dry run: nothing written (target {target})" if dry_run else f"exported into {target}"
    )
